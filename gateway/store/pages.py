"""Zero-based pages of a fixed size, the shape every list endpoint returns."""

from __future__ import annotations

from typing import Generic, TypeVar

import attrs

PAGE_SIZE = 100
T = TypeVar("T")


@attrs.frozen
class Page(Generic[T]):
    items: list[T]
    page: int
    total: int

    @property
    def has_more(self) -> bool:
        return (self.page + 1) * PAGE_SIZE < self.total


def offset(page: int) -> int:
    return page * PAGE_SIZE
