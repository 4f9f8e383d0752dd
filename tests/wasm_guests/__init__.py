"""Helpers that build the example WASM guests from source and run them in tests."""
