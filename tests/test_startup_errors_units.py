"""The pieces of the front door that need no process: password masking (generated URLs),
the key shape (one rule for bootstrap and authentication), the binaries of a cluster's
version, and the leaves of nested exception groups."""

from __future__ import annotations

import errno
import pathlib
import string
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import Settings
from gateway.embedded_pg_paths import SYSTEM_BINARIES, EmbeddedPostgresError, find_bindir
from gateway.keys import KEY_MIN_LENGTH, generate_key, is_well_formed, shape_problem
from gateway.logs import redact_url
from gateway.startup_errors import StartupError, bind_error, leaves, lines_for

SEEDED = settings(derandomize=True, max_examples=400, deadline=None)

# Everything but the password is lowercase, so a password that starts with "PW" (in any
# encoding: percent-escapes are %XX with hex digits) can only show up where it was put.
_plain = st.text(alphabet=string.ascii_lowercase + string.digits + "._-", min_size=1,
                 max_size=12)
_password = st.text(min_size=0, max_size=24).map(lambda tail: "PW" + tail)


@st.composite
def database_urls(draw):
    """(url, password): a URL with the password in the userinfo, the query, or both; the
    userinfo password percent-encoded or typed raw (with '/', '?', '#', '@' and all)."""
    password = draw(_password)
    user, host, database = draw(_plain), draw(_plain), draw(_plain)
    port = draw(st.one_of(st.none(), st.integers(1, 65535)))
    hostport = host if port is None else f"{host}:{port}"
    where = draw(st.sampled_from(["userinfo", "userinfo-raw", "query", "sslquery", "both"]))
    userinfo = user
    if where in ("userinfo", "both"):
        userinfo = f"{user}:{quote(password, safe='')}"
    elif where == "userinfo-raw":
        userinfo = f"{user}:{password.replace(chr(0), '')}"
        password = password.replace(chr(0), "")
    params = [f"{draw(_plain)}={draw(_plain)}" for _ in range(draw(st.integers(0, 2)))]
    if where in ("query", "both", "sslquery"):
        name = "sslpassword" if where == "sslquery" else draw(st.sampled_from(
            ["password", "PASSWORD", "Password"]))
        params.insert(draw(st.integers(0, len(params))), f"{name}={quote(password, safe='')}")
    scheme = draw(st.sampled_from(["postgresql", "postgres"]))
    url = f"{scheme}://{userinfo}@{hostport}/{database}"
    if params:
        url += "?" + "&".join(params)
    return url, password


@SEEDED
@given(database_urls())
def test_redacted_url_never_holds_the_password(case):
    url, password = case
    redacted = redact_url(url)
    for form in {password, quote(password, safe=""), quote(password)}:
        assert form not in redacted, (url, redacted)
    assert "***" in redacted


@SEEDED
@given(_plain, _plain, _plain, st.lists(st.tuples(_plain, _plain), max_size=3))
def test_url_without_password_is_unchanged(user, host, database, params):
    params = [(k, v) for k, v in params if not k.endswith("password")]
    url = f"postgresql://{user}@{host}:5432/{database}"
    if params:
        url += "?" + "&".join(f"{k}={v}" for k, v in params)
    assert redact_url(url) == url


def test_redact_url_examples():
    assert redact_url("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_url("postgresql://u@h/db?password=secret&sslmode=require") == \
        "postgresql://u@h/db?password=***&sslmode=require"
    assert redact_url("postgresql://u:pa/ss@h/db") == "postgresql://u:***@h/db"
    assert redact_url("host=h password='se cret' user=u") == "host=h password=*** user=u"


def test_startup_lines_mask_the_configured_password():
    url = "postgresql://u:PWtopsecret@h/db?sslpassword=PWother"
    settings_ = Settings.model_validate({"database": {"url": url}})
    error = RuntimeError(f"cannot use {url} (password PWtopsecret, ssl PWother)")
    [line] = lines_for(ExceptionGroup("x", [error]), settings_)
    assert "PWtopsecret" not in line and "PWother" not in line
    assert "GATEWAY_LOG_LEVEL=debug" in line  # an unknown error: the hint, not a traceback


@SEEDED
@given(st.text(max_size=300))
def test_key_shape_is_one_rule(key):
    expected = (len(key) >= KEY_MIN_LENGTH and len(key) <= 256
                and all(c in string.ascii_letters + string.digits + "-_" for c in key))
    assert is_well_formed(key) is expected
    assert (shape_problem(key) is None) is expected


def test_generated_keys_have_the_shape():
    assert all(is_well_formed(generate_key()) for _ in range(100))
    assert is_well_formed("a" * 32) and not is_well_formed("a" * 31)
    assert "31 characters" in shape_problem("a" * 31)
    assert "characters other than" in shape_problem("a" * 20 + " " + "b" * 20)


def test_leaves_of_nested_groups_one_line_each():
    inner = ExceptionGroup("Exceptions from Trio nursery", [
        StartupError("cause one", "fix one"),
        BaseExceptionGroup("Exceptions from Trio nursery", [StartupError("cause two", "fix two")]),
    ])
    group = ExceptionGroup("Exceptions from Trio nursery",
                           [inner, StartupError("cause one", "fix one")])
    assert [str(e) for e in leaves(group)] == [
        "cause one. Fix: fix one.", "cause two. Fix: fix two.", "cause one. Fix: fix one."]
    assert lines_for(group, None) == ["cause one. Fix: fix one.", "cause two. Fix: fix two."]


@pytest.mark.skipif(not (SYSTEM_BINARIES / "15" / "bin" / "initdb").exists(),
                    reason="needs PostgreSQL 15's server binaries")
def test_binaries_follow_the_cluster_version():
    assert find_bindir("15") == SYSTEM_BINARIES / "15" / "bin"
    newest = find_bindir()
    assert newest.parent.parent == SYSTEM_BINARIES
    with pytest.raises(EmbeddedPostgresError) as missing:
        find_bindir("99", pathlib.Path("/srv/x/pg"))
    message = str(missing.value)
    assert "PostgreSQL 99" in message and "postgresql-99" in message and "/srv/x/pg" in message
    assert "\n" not in message


def test_bind_permission_denied_names_the_port_rule():
    # As root every port binds, so this branch is checked here; EADDRINUSE and
    # EADDRNOTAVAIL are checked through the real command in test_startup_errors.py.
    error = bind_error(PermissionError(errno.EACCES, "Permission denied"), "the SIP adapter",
                       "0.0.0.0", 5060, "telephony.sip.bind_host", "telephony.sip.bind_port")
    assert str(error) == (
        "the SIP adapter cannot listen on 0.0.0.0:5060: no permission (ports below 1024 need "
        "root or CAP_NET_BIND_SERVICE). Fix: set telephony.sip.bind_port to 1024 or above, or "
        "grant the capability (setcap cap_net_bind_service=+ep on the Python binary).")
