"""Read back the contacts COPY payload (PostgreSQL's binary COPY format) in tests."""

from __future__ import annotations

import json
import struct
import uuid

from gateway.contacts_csv import COPY_COLUMNS, COPY_SIGNATURE, COPY_TRAILER


def decode(payload: bytes, columns: list[str]) -> list[list]:
    """The payload's rows as [campaign_id, seq, row_number, phone_number, custom_fields],
    custom_fields as the dict the API shows (names from `columns`, the CSV header).
    Asserts the framing: the signature, five fields per row, the trailer, nothing after."""
    assert payload.startswith(COPY_SIGNATURE) and payload.endswith(COPY_TRAILER)
    at, end = len(COPY_SIGNATURE), len(payload) - len(COPY_TRAILER)
    rows = []
    while at < end:
        (count,) = struct.unpack_from(">h", payload, at)
        assert count == len(COPY_COLUMNS)
        at += 2
        values = []
        for _ in range(count):
            (size,) = struct.unpack_from(">i", payload, at)
            assert size >= 0  # no NULLs
            values.append(payload[at + 4:at + 4 + size])
            at += 4 + size
        campaign, seq, row, phone, fields = values
        values = json.loads(fields.decode("utf-8"))
        assert isinstance(values, list) and all(isinstance(v, str) for v in values)
        rows.append([str(uuid.UUID(bytes=campaign)), int.from_bytes(seq, "big", signed=True),
                     int.from_bytes(row, "big", signed=True), phone.decode("ascii"),
                     dict(zip(columns, values, strict=True))])
    assert at == end
    return rows
