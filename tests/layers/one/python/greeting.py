"""A module of the first layer (at python/ of the layer)."""

WORDS = "hello from layer one"
