"""Build attrs records from database rows by field name."""

from __future__ import annotations

from typing import TypeVar

import attrs

R = TypeVar("R")


def from_row(cls: type[R], row) -> R:
    """The record ``cls`` filled from the row's columns of the same names."""
    return cls(**{field.name: row[field.name] for field in attrs.fields(cls)})
