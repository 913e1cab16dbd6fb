"""Read back the contacts COPY payload (PostgreSQL's binary COPY format) in tests."""

from __future__ import annotations

import json
import struct
import uuid

from gateway.contacts_csv import COPY_COLUMNS, COPY_SIGNATURE, COPY_TRAILER


def decode(payload: bytes, columns: list[str], *, zones: bool = False) -> list[list]:
    """The payload's rows as [campaign_id, seq, row_number, phone_number, custom_fields]
    ([campaign_id, zone, seq, row_number, phone_number, custom_fields] with ``zones``),
    custom_fields as the dict the API shows (names from `columns`, the CSV header).
    Asserts the framing: the signature, a field per COPY column in each row, the zone a
    smallint, the trailer, nothing after."""
    assert COPY_COLUMNS == ("campaign_id", "zone", "seq", "row_number", "phone_number",
                            "custom_fields")
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
        campaign, zone, seq, row, phone, fields = values
        assert len(zone) == 2
        values = json.loads(fields.decode("utf-8"))
        assert isinstance(values, list) and all(isinstance(v, str) for v in values)
        decoded = [str(uuid.UUID(bytes=campaign)), int.from_bytes(seq, "big", signed=True),
                   int.from_bytes(row, "big", signed=True), phone.decode("ascii"),
                   dict(zip(columns, values, strict=True))]
        if zones:
            decoded.insert(1, int.from_bytes(zone, "big", signed=True))
        rows.append(decoded)
    assert at == end
    return rows
