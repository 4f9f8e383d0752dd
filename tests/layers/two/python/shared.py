"""Replaces the first layer's file of the same path."""

VALUE = "layer two"
