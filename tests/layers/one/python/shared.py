"""Replaced by the second layer's file of the same path."""

VALUE = "layer one"
