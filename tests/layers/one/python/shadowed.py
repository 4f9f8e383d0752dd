"""The function's own code has a module of this name: the code wins."""

WHERE = "layer"
