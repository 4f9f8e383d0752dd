"""The function's own module: found before any layer's of the same name."""

WHERE = "code"
