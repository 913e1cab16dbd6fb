"""Data access: one module per table family, attrs records out, named SQL in ``sql/queries``."""
