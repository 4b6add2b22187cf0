"""``header()`` reads request headers as Starlette's ``Headers.get`` does, from one dict per request."""

from __future__ import annotations

from starlette.datastructures import Headers

from birdhouse.http.auth import header


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
