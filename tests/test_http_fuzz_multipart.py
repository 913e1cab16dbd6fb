"""Mutated campaign uploads against a real server and real PostgreSQL.

A valid ``POST /api/v1/campaigns`` (fields, CSV, boundary) is built, then hypothesis mutates
it: field values, part names and headers, the boundary and the Content-Type parameters, the
CSV, garbage between parts, and the raw bytes. Whatever comes out: the answer is never a
5xx, every 4xx is the JSON error shape with a message (a 400 naming a field starts with
it), and an answer other than 201 leaves no campaign and no contact row behind (counted
with a real query), while a 201 leaves exactly one campaign with its contacts.

The reader itself (``read_form``, ``boundary_of``) is also driven directly with arbitrary
bytes and headers: it returns a form or raises ``ApiError``, nothing else.

Hypothesis runs in a worker thread and calls back into the test's trio loop for HTTP and
SQL, so the conftest's time bound holds; derandomized, bounded examples; ``-m slow`` runs
many more.
"""

from __future__ import annotations

import functools
import json

import pytest
import trio
from conftest import us_number
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.http.errors import ApiError
from gateway.http.multipart import boundary_of, read_form

EXAMPLES = 60
SLOW_EXAMPLES = 3000
READER_EXAMPLES = 300

# Values that once broke something, or sit on a bound.
NASTY_VALUES = ["", " ", "0", "-1", "1e3", "2147483647", "2147483648", "9223372036854775808",
                "1" * 400, "NaN", "null", "true", "\x00", "\ud7ff", "é", "\u0661",
                "9999-12-31T23:59:59-05:00", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+05:00",
                "2031-01-01T10:00:00", "2031-01-01T10:00:00+23:59", "2031-02-30T10:00:00Z",
                "00000000-0000-0000-0000-000000000000", "{{", "a" * 201]
BOUNDARY_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789'()+_,-./:=? "
# What a client can put in a header value at all (HTTP/1.1: visible latin-1 and spaces).
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                    exclude_characters="\x7f"), max_size=60)
FIELDS = ["name", "agent_id", "phone_number_id", "max_concurrent_calls", "retries_per_contact",
          "retry_delay_seconds", "scheduled_at", "calling_window", "retry_policy", "contacts"]


@st.composite
def content_types(draw) -> str:
    """Content-Type values around multipart/form-data: any parameters, in every syntax
    (token, quoted, RFC 2231 extended and continued), of any characters."""
    mimetype = draw(st.sampled_from(["multipart/form-data", "Multipart/Form-Data",
                                     "multipart/form-data ", "multipart/mixed", "text/csv"]))
    params = []
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.one_of(st.sampled_from(["boundary", "boundary*", "BOUNDARY",
                                               "boundary*0", "boundary*1", "boundary*0*",
                                               "charset"]), HEADER_TEXT))
        raw = draw(st.one_of(st.text(BOUNDARY_CHARS, max_size=75), HEADER_TEXT))
        value = draw(st.sampled_from([
            raw, f'"{raw}"', f"utf-8''{raw}", "utf-8''" + "".join(
                f"%{b:02X}" for b in raw.encode("utf-8")), "latin-1'en'" + raw,
            "bogus''" + "".join(f"%{b:02X}" for b in raw.encode("utf-8"))]))
        params.append(f"{name}={value}")
    return "; ".join([mimetype, *params])


def _csv(rows: int) -> bytes:
    lines = ["phone_number,first_name"] + [f"{us_number(i)},n{i}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


@st.composite
def uploads(draw, agent_id: str, number_id: str):
    """(body, Content-Type) of a valid upload, then mutated."""
    boundary = draw(st.sampled_from(["b", "x-boundary-7", "----WebKitFormBoundary7MA4YWxk"]))
    parts = [[f'Content-Disposition: form-data; name="{name}"'.encode(), value.encode()]
             for name, value in [("name", "fuzz"), ("agent_id", agent_id),
                                 ("phone_number_id", number_id)]]
    for name, value in draw(st.lists(st.sampled_from(
            [("max_concurrent_calls", "3"), ("retries_per_contact", "1"),
             ("retry_delay_seconds", "120"), ("scheduled_at", "2031-01-01T10:00:00Z"),
             ("calling_window", '{"days": ["mon", "fri"], "start": "09:00", "end": "20:00"}'),
             ("retry_policy", '{"no_answer": {"delay_seconds": 3600, "max_attempts": 3}}')]),
            unique=True, max_size=6)):
        parts.append([f'Content-Disposition: form-data; name="{name}"'.encode(),
                      value.encode()])
    parts.append([b'Content-Disposition: form-data; name="contacts"; filename="c.csv"\r\n'
                  b"Content-Type: text/csv", _csv(draw(st.integers(1, 5)))])
    parts = draw(st.permutations(parts))
    content_type = f"multipart/form-data; boundary={boundary}"
    preamble, epilogue, between = b"", b"", {}

    for mutation in draw(st.lists(st.sampled_from(MUTATIONS), max_size=3)):
        index = draw(st.integers(0, len(parts) - 1)) if parts else 0
        if mutation == "value" and parts:
            parts[index][1] = draw(st.one_of(
                st.sampled_from(NASTY_VALUES).map(str.encode),
                st.text(max_size=30).map(lambda t: t.encode("utf-8", "surrogatepass")),
                st.integers(-2**70, 2**70).map(lambda n: str(n).encode()),
                st.binary(max_size=30)))
        elif mutation == "name" and parts:
            name = draw(st.one_of(st.sampled_from([*FIELDS, "", "colour", "contacts[]"]),
                                  st.text(max_size=12)))
            disposition = draw(st.sampled_from([
                'form-data; name="{}"', 'form-data; name={}', "form-data; name*=utf-8''{}",
                'form-data; name="{}"; filename="f.csv"', 'form-data; filename="{}"',
                "form-data", 'attachment; name="{}"']))
            parts[index][0] = ("Content-Disposition: " + disposition.format(name)).encode(
                "utf-8", "surrogatepass")
        elif mutation == "header" and parts:
            parts[index][0] = draw(st.sampled_from([
                b"", b"X-Junk: 1", b"no colon here",
                b"Content-Disposition: form-data; name=\"\xff\"",
                parts[index][0] + b"\r\nX-Long: " + b"h" * 20_000,
                parts[index][0].replace(b"\r\n", b"\n"), parts[index][0] + b"\r\n continued"]))
        elif mutation == "duplicate" and parts:
            parts.insert(index, list(parts[index]))
        elif mutation == "drop" and parts:
            del parts[index]
        elif mutation == "csv":
            contacts = [p for p in parts if b'name="contacts"' in p[0]]
            if contacts:
                contacts[0][1] = draw(st.one_of(
                    st.binary(max_size=200),
                    st.sampled_from([b"", b"\xef\xbb\xbfphone_number\n+12025550143\n",
                                     b"phone_number\n\n\n\n", b'phone_number\n"+1202\n',
                                     b"phone_number;name\n+12025550143;a\n",
                                     b"phone_number,x\n+12025550143,a,b,c\n",
                                     b"phone_number\n+1202\x00\n", b"a\n" * 500]),
                    st.text(max_size=200).map(lambda t: ("phone_number\n" + t).encode(
                        "utf-8", "surrogatepass"))))
        elif mutation == "content_type":
            content_type = draw(st.one_of(
                st.sampled_from([
                    f'multipart/form-data; boundary="{boundary}"',
                    f"multipart/form-data; boundary*=utf-8''{boundary}",
                    "multipart/form-data; boundary*=utf-8''%E2%82%AC",
                    f"MULTIPART/FORM-DATA; BOUNDARY={boundary}; charset=utf-8",
                    "multipart/form-data", "multipart/form-data; boundary=",
                    "multipart/form-data; boundary=" + "z" * 200,
                    f"multipart/mixed; boundary={boundary}", "application/json", "",
                    f"multipart/form-data; boundary={boundary}; boundary=other",
                    f"multipart/form-data; boundary*0={boundary[:1]}; boundary*1={boundary[1:]}"]),
                st.text(BOUNDARY_CHARS, min_size=0, max_size=80).map(
                    lambda b: f"multipart/form-data; boundary={b}"),
                content_types(),
                HEADER_TEXT.map(lambda t: "multipart/form-data; " + t),
                HEADER_TEXT))
        elif mutation == "garbage":
            junk = draw(st.binary(max_size=40))
            where = draw(st.sampled_from(["preamble", "epilogue", "between"]))
            if where == "preamble":
                preamble = junk
            elif where == "epilogue":
                epilogue = junk
            else:
                between[index] = junk

    body = preamble
    for i, (head, value) in enumerate(parts):
        body += between.get(i, b"") + b"--" + boundary.encode() + b"\r\n" + head + b"\r\n\r\n"
        body += value + b"\r\n"
    body += b"--" + boundary.encode() + b"--\r\n" + epilogue
    if draw(st.booleans()) and draw(st.booleans()):  # raw bytes, a quarter of the time
        body = draw(_byte_mutation(body))
    return body, content_type.strip(" ").encode("latin-1")


MUTATIONS = ["value", "name", "header", "duplicate", "drop", "csv", "content_type",
             "garbage"]


@st.composite
def _byte_mutation(draw, body: bytes):
    at = draw(st.integers(0, len(body)))
    kind = draw(st.sampled_from(["truncate", "insert", "delete", "flip"]))
    if kind == "truncate":
        return body[:at]
    if kind == "insert":
        return body[:at] + draw(st.binary(min_size=1, max_size=20)) + body[at:]
    if kind == "delete":
        return body[:at] + body[at + draw(st.integers(1, 20)):]
    if at == len(body):
        return body
    return body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1:]


def assert_error_shape(response) -> None:
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) <= {"code", "message", "field"}, error
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    if response.status_code == 400 and "field" in error:
        assert error["message"].startswith(f"{error['field']}: "), error


async def _fuzz_uploads(api, db, agent_id, number_id, examples: int) -> dict[int, int]:
    seen: dict[int, int] = {}

    async def post(body: bytes, content_type: bytes):
        before = (await db.fetchval("testing.count_campaigns"),
                  await db.fetchval("testing.count_contacts"))
        response = await api.post("/api/v1/campaigns", content=body,
                                  headers={"Content-Type": content_type})
        after = (await db.fetchval("testing.count_campaigns"),
                 await db.fetchval("testing.count_contacts"))
        return response, before, after

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(upload=uploads(agent_id, number_id))
    def check(upload):
        body, content_type = upload
        response, before, after = trio.from_thread.run(post, body, content_type)
        status = response.status_code
        seen[status] = seen.get(status, 0) + 1
        assert status < 500, (status, response.text[:500])
        if status == 201:
            total = response.json()["contact_counts"]["total"]
            assert after == (before[0] + 1, before[1] + total), (before, after)
        else:
            assert 400 <= status < 500, (status, response.text[:500])
            assert_error_shape(response)
            assert after == before, (status, response.text[:300], before, after)

    await trio.to_thread.run_sync(check, abandon_on_cancel=True)
    return seen


async def test_mutated_uploads_are_never_5xx_nor_half_written(api, db, agent_id, number_id):
    seen = await _fuzz_uploads(api, db, agent_id, number_id, EXAMPLES)
    # The generator reaches both sides: accepted uploads and refused ones.
    assert 201 in seen and any(400 <= s < 500 for s in seen), seen


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_mutated_uploads_long(api, db, agent_id, number_id):
    seen = await _fuzz_uploads(api, db, agent_id, number_id, SLOW_EXAMPLES)
    assert 201 in seen, seen


# The reader alone, without a server: any bytes, any header.
async def _read(body: bytes, content_type: str, chunk: int):
    async def chunks():
        for start in range(0, len(body), chunk):
            yield body[start:start + chunk]

    with trio.fail_after(5):  # the time bound of this sync test, example by example
        form = await read_form(chunks(), content_type, text_fields={"name", "agent_id"},
                               file_fields={"contacts"}, file_max_bytes=256,
                               body_max_bytes=4096)
    form.close()
    return form


@settings(max_examples=READER_EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
@given(body=st.one_of(st.binary(max_size=600), uploads("a", "b").map(lambda u: u[0])),
       content_type=st.one_of(st.text(max_size=80), st.just("multipart/form-data; boundary=b"),
                              content_types()),
       chunk=st.integers(1, 700))
def test_reader_is_total(body, content_type, chunk):
    try:
        trio.run(functools.partial(_read, body, content_type, chunk))
    except ApiError as error:
        assert 400 <= error.status < 500 and error.message
        json.dumps({"message": error.message, "field": error.field})  # always encodable


@settings(max_examples=READER_EXAMPLES, derandomize=True, database=None, deadline=None)
@given(st.one_of(st.text(max_size=120), content_types()))
def test_boundary_parse_is_total(content_type):
    try:
        boundary = boundary_of(content_type)
    except ApiError as error:
        assert error.status in (400, 415)
    else:
        assert 1 <= len(boundary) <= 70 and boundary.decode("ascii")
