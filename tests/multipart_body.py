"""A multipart/form-data body built by hand, so tests and benchmarks control every part."""

from __future__ import annotations

import uuid


def multipart(fields: dict[str, str], files: dict[str, bytes]) -> tuple[bytes, str]:
    """(body, Content-Type) with one part per field and one CSV file part per file."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                     .encode() + value.encode() + b"\r\n")
    for name, content in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                     f'filename="{name}.csv"\r\nContent-Type: text/csv\r\n\r\n'.encode()
                     + content + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"
