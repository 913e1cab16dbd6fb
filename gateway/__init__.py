"""Outbound voice campaign gateway."""

__version__ = "0.1.0"
