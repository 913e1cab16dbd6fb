"""Build attrs records from database rows by field name."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, TypeVar

import attrs

R = TypeVar("R", bound=attrs.AttrsInstance)


class Row(Protocol):
    """A database row (asyncpg's ``Record``) or a dict of its columns, read by column name."""

    def keys(self) -> Iterable[str]: ...

    def __getitem__(self, name: str, /) -> Any: ...


def from_row(cls: type[R], row: Row) -> R:
    """The record ``cls`` filled from the row's columns of the same names."""
    return cls(**{field.name: row[field.name] for field in attrs.fields(cls)})
