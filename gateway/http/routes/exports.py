"""Placeholder: filled in by its owner."""

from __future__ import annotations

from quart import Blueprint

bp = Blueprint("exports", __name__)
