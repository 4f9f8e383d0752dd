"""edge: a self-hosted, Lambda@Edge-compatible edge function runtime."""

__version__ = "0.6.0"
__all__ = ["__version__"]
