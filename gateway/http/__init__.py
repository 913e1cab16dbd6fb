"""The HTTP edge: validation in, JSON out, errors translated to the API's format."""
