"""Hypothesis against ``POST /v0/events`` in-process, over real chDB (SPEC §1–2, DESIGN invariant 5).

Each example is one request with a random body (arbitrary bytes, JSON-ish lines, valid
NDJSON mixed with garbage), a random ``Content-Encoding`` with a correctly, wrongly or
not compressed body, random query parameters (``name``, ``wait``, ``format``, ``token``,
unknown ones) and a random ``Authorization`` shape. Properties, checked on every example:

* no 5xx but the 501 of an unsupported ``format`` (E18): a 500 is always a bug, and none
  of the 503 backpressure cases can happen here (storage up, one request at a time);
* the steps before the body (token, ``name``, ``format``, scope) answer exactly as SPEC
  §1.4 orders them;
* a 4xx stores nothing: the row count of every table of the workspace (data sources and
  quarantine tables) is the same before and after, once the WAL is delivered;
* a 2xx's counts are the rows that appear: ``successful_rows`` in the data source,
  ``quarantined_rows`` in ``<ds>_quarantine``, nothing anywhere else; for a plain NDJSON
  body every non-blank line is counted exactly once (SPEC §2.1);
* error bodies are ``text/plain; charset=utf-8`` lines ending in ``\\n``, never a traceback;
  success bodies are ``application/json`` with exactly the two counts;
* the test process's RSS stays bounded across the whole run.

Run longer with ``BIRDHOUSE_FUZZ_EXAMPLES=2000``.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.apps import Local, start_local

EXAMPLES = int(os.environ.get("BIRDHOUSE_FUZZ_EXAMPLES", "0")) or 200
# Small caps so random compressed bodies cross them now and then (E14/E15).
MAX_WIRE = 64 * 1024
MAX_INFLATED = 256 * 1024
# RSS may grow this much over the run. The process holds chDB (mark and uncompressed caches,
# per-table metadata for the data sources auto-created on the way, arenas glibc keeps after
# free) and Python's own arenas; together they settle within tens of MB. A leak of every
# request body or of the rows, or a decompression that is not capped while streaming (the
# bodies below inflate to up to 16 MiB each), crosses this within a run.
RSS_GROWTH_LIMIT = 300 * 1024 * 1024

DS = "fz"
SCHEMA = (
    "ts DateTime `json:$.ts`, n Int64 `json:$.n`, u UInt8 `json:$.u`, s String `json:$.s`, "
    "f Nullable(Float64) `json:$.f`, tags Array(String) `json:$.tags[:]`, big Int256 `json:$.big`, "
    "d Nullable(Decimal(10, 2)) `json:$.d`, id Nullable(UUID) `json:$.id`, deep Nullable(String) `json:$.a.b.c`"
)
GOOD_LINE = (
    b'{"ts": "2024-01-15T10:30:00.123456789Z", "n": 1, "u": 2, "s": "x", "tags": ["a"], "big": "123", '
    b'"a": {"b": {"c": "y"}}}'
)


@dataclass
class Fuzz:
    local: Local
    database: str
    ds_id: str
    tokens: dict[str, str]  # role -> token string
    statuses: list[int] = field(default_factory=list)


def _vm_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    overrides: dict[str, Any] = {"events.max_request_bytes": MAX_WIRE, "events.max_decompressed_bytes": MAX_INFLATED}
    client, settings_ = start_local(tmp_path_factory.mktemp("events-fuzz") / "data", **overrides)
    try:
        tokens = client.get("/tokens").json()
        local = Local(client, settings_, tokens["workspace_admin_token"], tokens["admin_token"], tokens["user_token"])
        created = local.create_datasource(DS, SCHEMA)
        workspace = local.runtime.default_workspace()
        assert workspace is not None
        roles = {
            "admin": local.admin,
            "user_admin": local.user_admin,
            "creator": local.create_token("fz creator", "DATASOURCES:CREATE"),
            "appender": local.create_token("fz appender", f"DATASOURCES:APPEND:{DS}"),
            "reader": local.create_token("fz reader", f"DATASOURCES:READ:{DS}"),
        }
        yield Fuzz(local, workspace.database, str(created["id"]), roles)
    finally:
        client.__exit__(None, None, None)


# ------------------------------------------------------------------ strategies

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["2024-01-15 10:30:00", "2024-01-15T10:30:00Z", "not a date", "123", "-1", "1e3"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
# Objects that use the schema's keys, with values of any type: conversion and quarantine paths.
column_objects = st.fixed_dictionaries(
    {},
    optional={key: json_values for key in ("ts", "n", "u", "s", "f", "tags", "big", "d", "id", "a")},
)
good_lines = st.just(GOOD_LINE)
json_lines = st.one_of(column_objects, json_values).map(lambda v: json.dumps(v).encode())
garbage_lines = st.one_of(
    st.binary(max_size=60).map(lambda b: b.replace(b"\n", b" ")),
    st.sampled_from(
        [b"{", b"}", b"[1, 2]", b"NaN", b'{"n": NaN}', b'{"a": 1}{"b": 2}', b"\xff\xfe", b"\xef\xbb\xbf{}", b"\x00",
         b'"\\ud800"', b'{"s": "\\udfff"}', b"   ", b"\r", b"null", b"[" * 300, b'{"n": 1' + b"0" * 5000 + b"}"]
    ),
)  # fmt: skip
lines = st.one_of(good_lines, json_lines, garbage_lines)
separators = st.sampled_from([b"\n", b"\r\n", b"\n\n", b"\n \n"])


@st.composite
def ndjson_bodies(draw: st.DrawFn) -> bytes:
    chosen = draw(st.lists(lines, max_size=12))
    sep = draw(separators)
    body = sep.join(chosen)
    if draw(st.booleans()):
        body += b"\n"
    if draw(st.sampled_from([False] * 9 + [True])):
        body = b"\xef\xbb\xbf" + body
    return body


# A body is drawn as bytes, or as a number of MiB of good lines built outside Hypothesis: values
# drawn inside a composite strategy stay referenced by Hypothesis for the whole run, which would
# make the RSS bound measure the test harness rather than the server.
bodies = st.one_of(
    ndjson_bodies(),
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    # Large and highly compressible: inflates past MAX_INFLATED when compressed.
    st.integers(1, 16),
)


def _plain(spec: bytes | int) -> bytes:
    if isinstance(spec, bytes):
        return spec
    return (GOOD_LINE + b"\n") * (spec * 1024 * 1024 // (len(GOOD_LINE) + 1))


def _gzip(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=1)


def _zstd(body: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=1).compress(body)


def _deflate(body: bytes) -> bytes:
    return zlib.compress(body, 1)


COMPRESSORS = {"gzip": _gzip, "zstd": _zstd, "deflate": _deflate}
# What a header can carry on the wire: visible latin-1 (the server decodes header bytes as latin-1).
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=10)
ENCODING_HEADERS = st.one_of(
    st.none(),
    st.sampled_from(["gzip", "zstd", "deflate"]),
    st.sampled_from(["identity", "", "x-gzip", "GZIP", " gzip ", "br", "snappy", "gzip, br", "compress", "*"]),
    header_text,
)


@dataclass(frozen=True)
class Attempt:
    body: bytes | int  # the uncompressed body, or MiB of good lines (see _plain)
    compress_as: str | None
    damage: tuple[str, float]  # ("none" | "truncate" | "flip", where in the compressed stream)
    intact: bool  # the wire body is a valid stream for the Content-Encoding header
    encoding: str | None
    params: list[tuple[str, str]]
    headers: dict[str, str]
    token: str | None  # the token the server should read (query wins over the header)
    name: str
    fmt: str | None


@st.composite
def attempts(draw: st.DrawFn, tokens: dict[str, str], ds_id: str) -> Attempt:
    body = draw(bodies)
    encoding = draw(ENCODING_HEADERS)
    kind = (encoding or "").strip().lower()
    codec = "gzip" if kind in ("gzip", "x-gzip") else kind if kind in ("zstd", "deflate") else None
    compress_as = draw(st.sampled_from([codec, codec, codec, None, "gzip", "zstd", "deflate"]))
    damage = (draw(st.sampled_from(["none"] * 6 + ["truncate", "flip"])), draw(st.floats(0, 1)))
    intact = damage[0] == "none" and compress_as == codec and (codec is not None or kind in ("", "identity"))

    secret = draw(
        st.sampled_from(["admin", "appender"]) | st.sampled_from(["user_admin", "creator", "reader", "bogus", "none"])
    )
    value = {"bogus": draw(st.sampled_from(["nope", "p.e30.sig", "p.a.b.c", " ", "p." + "A" * 300])),
             "none": ""}.get(secret) or tokens.get(secret, "")  # fmt: skip
    params: list[tuple[str, str]] = []
    name = draw(
        st.sampled_from([DS, ds_id])
        | st.sampled_from([f" {DS} ", "", "   ", f"{DS}_quarantine", "fzauto_1", "fzauto_2", "1bad", "a;DROP TABLE x",
                           "`fz`", "../../etc", "system.tables"])
        | st.text(max_size=8)
    )  # fmt: skip
    if draw(st.sampled_from([True] * 9 + [False])):
        params.append(("name", name))
    fmt = draw(st.none() | st.sampled_from(["ndjson", "json", "NDJSON", "csv", "parquet", ""]) | st.text(max_size=5))
    if draw(st.booleans()):
        fmt = None
    if fmt is not None:
        params.append(("format", fmt))
    for key, values in (("wait", ["true", "TRUE", "1", "false"]), ("quarantine_details", ["true"])):
        if draw(st.booleans()):
            params.append((key, draw(st.sampled_from(values) | st.text(max_size=4))))
    for key in draw(st.lists(st.sampled_from(["from", "mode", "cli_version", "debug", "x", "__tb__semver"]),
                             max_size=3, unique=True)):  # fmt: skip
        params.append((key, draw(st.text(max_size=6))))
    # Query parameters are never repeated here: see test_bad_inputs.py::test_repeated_parameters_first_wins.
    via = draw(
        st.sampled_from(["bearer", "query"])
        | st.sampled_from(["both", "lower", "spaces", "basic", "bare", "bearer-empty"])
    )
    headers: dict[str, str] = {}
    presented: str | None = value.strip() or None
    if via in ("query", "both"):
        params.append(("token", value))
    if via == "both":
        headers["Authorization"] = "Bearer not-the-token"
    shapes = {"bearer": f"Bearer {value}", "lower": f"bearer {value}", "spaces": f"  BEARER   {value}  ",
              "basic": f"Basic {value}", "bare": value, "bearer-empty": "Bearer "}  # fmt: skip
    if via in shapes:
        headers["Authorization"] = shapes[via]
        if via in ("basic", "bare", "bearer-empty"):
            presented = None
    if via == "both" and presented is None:
        presented = "not-the-token"
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    if draw(st.booleans()):
        headers["Content-Type"] = draw(st.sampled_from(["application/x-ndjson", "application/json", "text/plain"]))
    named = name if ("name", name) in params else ""
    return Attempt(body, compress_as, damage, intact, encoding, params, headers, presented, named, fmt)


def _wire(attempt: Attempt, plain: bytes) -> bytes:
    wire = COMPRESSORS[attempt.compress_as](plain) if attempt.compress_as else plain
    how, where = attempt.damage
    if how == "truncate" and len(wire) > 1:
        wire = wire[: max(1, int(where * (len(wire) - 1)))]
    elif how == "flip" and wire:
        at = min(len(wire) - 1, int(where * len(wire)))
        wire = wire[:at] + bytes([wire[at] ^ 0xFF]) + wire[at + 1 :]
    return wire


# ------------------------------------------------------------------- oracle


def _table_counts(fuzz: Fuzz) -> dict[str, int]:
    """Rows in every table of the workspace, after the WAL is delivered. Service data sources
    (``tinybird.*``, e.g. the ops log, one row per flush) are the server's own bookkeeping."""
    fuzz.local.drain()
    sql = f"SELECT name, total_rows FROM system.tables WHERE database = '{fuzz.database}' FORMAT JSONEachRow"
    body = fuzz.local.runtime.backend.query(sql, "JSONEachRow").body
    rows = map(json.loads, body.splitlines())
    return {row["name"]: int(row["total_rows"] or 0) for row in rows if not row["name"].startswith("tinybird.")}


def _roles(fuzz: Fuzz) -> dict[str, str]:
    return {token: role for role, token in fuzz.tokens.items()}


def _expected_before_body(fuzz: Fuzz, attempt: Attempt) -> tuple[int, str] | None:
    """SPEC §1.4 steps 2, 3 and 5 (append scope) for the data source that exists: the exact answer, or
    None when the request gets past them."""
    role = _roles(fuzz).get(attempt.token or "")
    if role is None:
        return 403, "Invalid token\n"
    name = attempt.name.strip()
    if not name:
        return 400, "Missing 'name' parameter\n"
    fmt = (attempt.fmt or "ndjson").strip().lower()
    if fmt not in ("ndjson", "json"):
        # Echoed cut at 100 characters, control characters escaped (never raw in a response).
        shown = (attempt.fmt or "")[:100].encode("unicode_escape").decode("ascii")
        return 501, f"Unimplemented format {shown}\n"
    if name in (DS, fuzz.ds_id):
        if role == "reader":
            return 403, "Invalid token\n"
        return None
    if name == f"{DS}_quarantine":
        return 400, "Quarantine Data Sources cannot be appended to\n"
    return None


def _non_blank_lines(body: bytes) -> int:
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:]
    return sum(1 for line in body.split(b"\n") if line.strip(b" \t\r"))


def _check(fuzz: Fuzz, attempt: Attempt) -> None:
    plain = _plain(attempt.body)
    wire = _wire(attempt, plain)
    before = _table_counts(fuzz)
    headers = {key.encode(): value.encode("latin-1") for key, value in attempt.headers.items()}
    response = fuzz.local.client.post("/v0/events", params=tuple(attempt.params), content=wire, headers=headers)
    status = response.status_code
    fuzz.statuses.append(status)
    after = _table_counts(fuzz)
    context = f"{status} {response.text[:300]!r} for {attempt.params} {attempt.headers}"
    assert status < 500 or status == 501, context
    assert status not in (429, 503), context
    assert response.headers["access-control-allow-origin"] == "*", context
    expected = _expected_before_body(fuzz, attempt)
    if expected is not None:
        assert (status, response.text) == expected, context
    if status >= 400:
        assert response.headers["content-type"] == "text/plain; charset=utf-8", context
        assert response.text.endswith("\n") and "Traceback" not in response.text, context
        assert after == {table: before.get(table, 0) for table in after}, f"a {context} stored rows"
        return
    assert status in (200, 202), context
    assert response.headers["content-type"] == "application/json", context
    counts = response.json()
    keys = ["successful_rows", "quarantined_rows"]
    assert list(counts) == ([*keys, "quarantine"] if "quarantine" in counts else keys), context
    target = attempt.name.strip()
    if target == fuzz.ds_id:
        target = DS
    grown = {table: rows - before.get(table, 0) for table, rows in after.items() if rows != before.get(table, 0)}
    expected_growth = {target: counts["successful_rows"], f"{target}_quarantine": counts["quarantined_rows"]}
    assert grown == {table: rows for table, rows in expected_growth.items() if rows}, context
    fmt = (attempt.fmt or "ndjson").strip().lower()
    if attempt.intact and fmt == "ndjson":
        assert counts["successful_rows"] + counts["quarantined_rows"] == _non_blank_lines(plain), context


@st.composite
def fuzz_attempts(draw: st.DrawFn, fuzz: Fuzz) -> Attempt:
    return draw(attempts(fuzz.tokens, fuzz.ds_id))


def test_events_fuzz(fuzz: Fuzz) -> None:
    rss_before = _vm_rss()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(attempt=fuzz_attempts(fuzz))
    def run(attempt: Attempt) -> None:
        _check(fuzz, attempt)

    run()
    growth = _vm_rss() - rss_before
    assert growth < RSS_GROWTH_LIMIT, f"RSS grew {growth / 2**20:.0f} MiB over {len(fuzz.statuses)} requests"
    # The run reached past the early checks: some requests were stored, some refused.
    assert any(s in (200, 202) for s in fuzz.statuses), fuzz.statuses
    assert any(400 <= s < 500 for s in fuzz.statuses), fuzz.statuses
