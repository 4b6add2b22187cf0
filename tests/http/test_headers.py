"""The hot path's own readers and writers of HTTP details give what Starlette's general ones give:
request headers (``Headers.get``), the query string (``parse_qsl``) and event answers (``Response``)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import Headers
from starlette.responses import Response

from birdhouse.http import events
from birdhouse.http.auth import header, parse_query


def test_header_matches_starlette_for_first_values_missing_names_and_latin1() -> None:
    raw = [
        (b"authorization", b"Bearer first"),
        (b"authorization", b"Bearer second"),
        (b"x-name", "caf\u00e9".encode("latin-1")),
        (b"content-length", b"12"),
    ]
    scope = {"type": "http", "headers": raw}
    starlette = Headers(scope=scope)
    for name in ("authorization", "x-name", "content-length", "origin"):
        assert header(scope, name.encode()) == starlette.get(name)
    assert header(scope, b"authorization") == "Bearer first"
    assert header(scope, b"origin") is None
    # Built once: a later change to the raw list is not seen (requests never change their headers).
    raw.append((b"origin", b"https://example.com"))
    assert header(scope, b"origin") is None


_QUERY_ALPHABET = "ab=&+%20%zz%C3%A9%ff é\u00e9;?#"


@given(st.text(alphabet=_QUERY_ALPHABET, max_size=40))
@settings(max_examples=400, deadline=None)
def test_parse_query_matches_parse_qsl_first_wins(query: str) -> None:
    expected: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        expected.setdefault(name, value)
    assert parse_query(query) == expected


def test_parse_query_cases() -> None:
    assert parse_query("name=events&wait=true&name=other") == {"name": "events", "wait": "true"}
    assert parse_query("token=a%2Bb+c&flag&&empty=") == {"token": "a+b c", "flag": "", "empty": ""}
    assert parse_query("") == {}


@pytest.mark.parametrize(
    ("status", "message", "headers"),
    [
        (400, "Missing 'name' parameter", {}),
        (429, "Too many requests", {"X-RateLimit-Limit": "10", "Retry-After": "1", "Vary": "Origin"}),
        (503, "Service temporarily unavailable, no data ingested, please retry again", {"Retry-After": "1"}),
    ],
)
def test_event_answers_have_starlettes_headers(status: int, message: str, headers: dict[str, str]) -> None:
    text = events._text(status, message, dict(headers))
    general = Response(message + "\n", status_code=status, headers=headers, media_type="text/plain; charset=utf-8")
    assert (text.status_code, text.body, text.raw_headers) == (general.status_code, general.body, general.raw_headers)
    for details in (None, [{"line": 1, "columns": ["n"], "errors": ["bad"]}]):
        ok = events._success(202, 3, 1, details, dict(headers))
        body: dict[str, object] = {"successful_rows": 3, "quarantined_rows": 1}
        if details is not None:
            body["quarantine"] = details
        general = Response(msgspec.json.encode(body), status_code=202, headers=headers, media_type="application/json")
        assert (ok.body, ok.raw_headers) == (general.body, general.raw_headers)
