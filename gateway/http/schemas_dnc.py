"""Pydantic models of the do-not-call list's HTTP bodies (``/api/v1/dnc``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, RootModel, StringConstraints
from quart_schema.pydantic import File

from gateway.http.schemas import Body, PageOut, PageQuery, RejectedRowOut
from gateway.vocabulary import DncSource

# Numbers in one JSON request: it is one INSERT statement.
MAX_NUMBERS = 10_000
# phonenumbers reads at most this many characters of a number (longer: too long).
MAX_NUMBER_CHARS = 250
Number = Annotated[str, StringConstraints(max_length=MAX_NUMBER_CHARS)]
_NUMBER = ("E.164 (+12125550100) or national in the configured default region "
           "((212) 555-0100); normalised to E.164")


class DncAdd(Body):
    """``POST /api/v1/dnc`` with ``application/json``: numbers to list."""

    numbers: list[Number] = Field(
        min_length=1, max_length=MAX_NUMBERS,
        description=f"1 to {MAX_NUMBERS:,} numbers, each {_NUMBER}. One invalid item: "
                    "400 naming it (numbers[i]), nothing added.")


class DncUploadForm(BaseModel):
    """``POST /api/v1/dnc`` with ``multipart/form-data``: a CSV of numbers to list."""

    file: File = Field(
        description="CSV with a phone_number column (other columns are ignored); the "
                    "delimiter, encoding and limits of the campaign contacts upload.")


class DncAdded(BaseModel):
    """The numbers listed by a JSON request."""

    added: int = Field(description="Numbers that were not on the list.")
    already_listed: int = Field(
        description="Items that were on the list already, or repeated an earlier item of "
                    "the request: added + already_listed is the number of items.")


class DncRejectedCounts(BaseModel):
    """Every rejected row of the file, by reason (they add up to ``rows_rejected``)."""

    empty: int = 0
    invalid_number: int = 0
    duplicate: int = 0
    column_count: int = 0


class DncUploaded(BaseModel):
    """The numbers listed by a CSV upload, and the rows that were not."""

    added: int = Field(description="Numbers that were not on the list.")
    already_listed: int = Field(
        description="Distinct valid numbers that were on the list already (a row repeating "
                    "an earlier one is rejected as duplicate).")
    rows_rejected: int = Field(description="Every rejected row, listed or not.")
    rejected: list[RejectedRowOut] = Field(
        description="The first 1,000 rejected rows, in file order.")
    rejected_counts: DncRejectedCounts


class DncAddResult(RootModel[DncUploaded | DncAdded]):
    """``DncAdded`` for a JSON request, ``DncUploaded`` for a CSV upload."""


class DncPageQuery(PageQuery):
    number: Number | None = Field(
        None, description=f"Only this number ({_NUMBER}; exact match). Empty: every number.")


class DncEntryOut(BaseModel):
    number: str = Field(description="E.164")
    source: DncSource = Field(description="api (JSON), upload (CSV) or disposition (an "
                                          "agent's do_not_call)")
    created_at: datetime


class DncPage(PageOut):
    data: list[DncEntryOut]
