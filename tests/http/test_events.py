"""POST /v0/events: status table, encodings, CORS, counts (SPEC §1–2)."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable
from typing import Any

import pytest
import zstandard

from tests.http.conftest import Local

SCHEMA = "date DateTime `json:$.date`, city String `json:$.city`"
TWO = b'{"date": "2020-04-05 00:05:38", "city": "Chicago"}\n{"date": "2020-04-05 00:07:22", "city": "Madrid"}\n'


@pytest.fixture
def events(local: Local) -> Local:
    local.create_datasource("events_test", SCHEMA)
    return local


def rows(local: Local, sql: str) -> list[dict[str, Any]]:
    local.drain()
    ws = local.runtime.default_workspace()
    assert ws is not None
    body = local.runtime.backend.query(sql.replace("{db}", f"`{ws.database}`"), "JSONEachRow").body
    return [json.loads(line) for line in body.splitlines()]


def post(
    local: Local,
    body: bytes,
    params: str = "name=events_test",
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    return local.client.post(f"/v0/events?{params}", content=body, headers={**local.auth(token), **(headers or {})})


def test_ndjson_lands_and_answers_202_with_counts(events: Local) -> None:
    response = post(events, TWO)
    assert response.status_code == 202
    assert response.text == '{"successful_rows":2,"quarantined_rows":0}'
    assert response.headers["content-type"] == "application/json"
    assert response.headers["access-control-allow-origin"] == "*"
    assert rows(events, "SELECT city FROM {db}.events_test ORDER BY date") == [{"city": "Chicago"}, {"city": "Madrid"}]


def test_wait_true_answers_200_and_rows_are_queryable(events: Local) -> None:
    response = post(events, TWO, "name=events_test&wait=TRUE")
    assert response.status_code == 200
    assert response.json() == {"successful_rows": 2, "quarantined_rows": 0}
    q = events.client.get("/v0/sql", params={"q": "SELECT count() c FROM events_test"}, headers=events.auth())
    assert q.json()["data"] == [{"c": 2}]


@pytest.mark.parametrize("wait", ["1", "yes", "false", ""])
def test_other_wait_values_are_async(events: Local, wait: str) -> None:
    assert post(events, TWO, f"name=events_test&wait={wait}").status_code == 202


def test_single_object_no_final_newline_crlf_and_blank_lines(events: Local) -> None:
    body = b'\n{"date": "2020-04-05 00:05:38", "city": "A"}\r\n\n   \n{"date": "2020-04-05 00:05:39", "city": "B"}'
    assert post(events, body).json() == {"successful_rows": 2, "quarantined_rows": 0}


def test_format_json_pretty_object_and_array(events: Local) -> None:
    pretty = b'{\n  "date": "2020-04-05 00:05:38",\n  "city": "Chicago"\n}\n'
    assert post(events, pretty, "name=events_test&format=json").json() == {"successful_rows": 1, "quarantined_rows": 0}
    array = json.dumps(
        [{"date": "2020-04-05 00:05:38", "city": "X"}, {"date": "2020-04-05 00:05:39", "city": "Y"}], indent=2
    ).encode()
    assert post(events, array, "name=events_test&format=json").json() == {"successful_rows": 2, "quarantined_rows": 0}


def test_reference_json_example_with_bash_line_continuations(events: Local) -> None:
    # What `curl -d $'{ \\\n "date": …, \\\n "city": … \\\n }'` sends, byte for byte.
    body = b'{ \\\n          "date": "2020-04-05 00:05:38", \\\n          "city": "Chicago" \\\n        }'
    response = post(events, body, "name=events_test&format=json")
    assert response.json() == {"successful_rows": 1, "quarantined_rows": 0}


@pytest.mark.parametrize(
    ("encode", "header"),
    [
        (gzip.compress, "gzip"),
        (gzip.compress, "x-gzip"),
        (gzip.compress, "GZIP"),
        (gzip.compress, None),  # sniffed by magic bytes
        (lambda b: zstandard.ZstdCompressor().compress(b), "zstd"),
        (lambda b: zstandard.ZstdCompressor().compress(b), None),
        (zlib.compress, "deflate"),
        (lambda b: zlib.compressobj(wbits=-15).compress(b) + zlib.compressobj(wbits=-15).flush(), "identity"),
    ],
)
def test_encodings(events: Local, encode: Any, header: str | None) -> None:
    body = encode(TWO)
    if header == "identity":
        # Raw deflate without a header is only understood when declared.
        body = zlib.compress(TWO)
        header = "deflate"
    headers = {"Content-Encoding": header} if header else {}
    response = post(events, body, headers=headers)
    assert response.status_code == 202, response.text
    assert response.json() == {"successful_rows": 2, "quarantined_rows": 0}


def test_gzip_multi_member(events: Local) -> None:
    body = gzip.compress(TWO) + gzip.compress(TWO)
    assert post(events, body, headers={"Content-Encoding": "gzip"}).json()["successful_rows"] == 4


@pytest.mark.parametrize("header", ["br", "snappy", "gzip, br", "compress"])
def test_unsupported_encoding_is_415(events: Local, header: str) -> None:
    response = post(events, TWO, headers={"Content-Encoding": header})
    assert response.status_code == 415
    assert response.text == f"Unsupported Content-Encoding '{header}'\n"
    assert rows(events, "SELECT count() c FROM {db}.events_test") == [{"c": 0}]


@pytest.mark.parametrize(("header", "name"), [("gzip", "gzip"), ("zstd", "zstd"), ("deflate", "deflate")])
def test_corrupt_stream_is_400_and_stores_nothing(events: Local, header: str, name: str) -> None:
    compressors: dict[str, Callable[[bytes], bytes]] = {
        "gzip": gzip.compress,
        "zstd": zstandard.ZstdCompressor().compress,
        "deflate": zlib.compress,
    }
    good = compressors[header](TWO)
    for corrupt in (good[: len(good) // 2], b"not compressed at all"):
        response = post(events, corrupt, headers={"Content-Encoding": header})
        assert response.status_code == 400
        assert response.text == f"Invalid {name} body\n"
    assert rows(events, "SELECT count() c FROM {db}.events_test") == [{"c": 0}]
    assert rows(events, "SELECT count() c FROM {db}.events_test_quarantine") == [{"c": 0}]


def test_body_caps(make_local: Any) -> None:
    local = make_local(**{"events.max_request_bytes": 20000, "events.max_decompressed_bytes": 5000})
    local.create_datasource("events_test", SCHEMA)
    big = TWO * 200
    response = post(local, big)
    assert response.status_code == 413
    assert response.text == "Request Entity Too Large: body exceeds 20000 bytes\n"
    bomb = gzip.compress(b"\n" * 10_000_000)
    assert len(bomb) < 20000
    response = post(local, bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert response.text == "Request Entity Too Large: decompressed body exceeds 5000 bytes\n"
    zbomb = zstandard.ZstdCompressor().compress(b" " * 10_000_000)
    response = post(local, zbomb, headers={"Content-Encoding": "zstd"})
    assert response.status_code == 413


def test_status_table_errors(events: Local) -> None:
    cases = [
        (post(events, TWO, token="nope"), 403, "Invalid token\n"),
        (events.client.post("/v0/events?name=events_test", content=TWO), 403, "Invalid token\n"),
        (post(events, TWO, "name="), 400, "Missing 'name' parameter\n"),
        (post(events, TWO, "name=%20%20"), 400, "Missing 'name' parameter\n"),
        (post(events, TWO, ""), 400, "Missing 'name' parameter\n"),
        (post(events, TWO, "name=events_test&format=csv"), 501, "Unimplemented format csv\n"),
        (post(events, TWO, "name=events_test_quarantine"), 400, "Quarantine Data Sources cannot be appended to\n"),
    ]
    for response, status, text in cases:
        assert response.status_code == status, text
        assert response.text == text
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert response.headers["access-control-allow-origin"] == "*"


def test_append_scopes(events: Local) -> None:
    events.create_datasource("other", SCHEMA)
    appender = events.create_token("appender", "DATASOURCES:APPEND:events_test")
    reader = events.create_token("reader", "DATASOURCES:READ:events_test")
    creator = events.create_token("creator", "DATASOURCES:CREATE")
    assert post(events, TWO, token=appender).status_code == 202
    assert post(events, TWO, token=creator).status_code == 202
    assert post(events, TWO, token=events.user_admin).status_code == 202
    denied = post(events, TWO, token=reader)
    assert (denied.status_code, denied.text) == (403, "Invalid token\n")
    other = post(events, TWO, "name=other", token=appender)
    assert (other.status_code, other.text) == (403, "Invalid token\n")
    missing = post(events, TWO, "name=missing_ds", token=appender)
    assert (missing.status_code, missing.text) == (403, "Invalid token for DS autocreation\n")
    # Token in the query string wins over the header.
    assert (
        events.client.post(
            f"/v0/events?name=events_test&token={appender}", content=TWO, headers=events.auth("garbage")
        ).status_code
        == 202
    )


def test_forward_mode_missing_datasource_is_404(make_local: Any) -> None:
    local = make_local(**{"compat.mode": "forward"})
    response = post(local, TWO, "name=nope")
    assert response.status_code == 404
    assert response.text.startswith("Data Source 'nope' does not exist.")


def test_datasource_by_id_and_ignored_params(events: Local) -> None:
    ds_id = events.client.get("/v0/datasources/events_test", headers=events.auth()).json()["id"]
    params = f"name={ds_id}&from=ts-sdk&mode=append&cli_version=4.6.13&__tb__semver=1.0.0&debug=x"
    assert post(events, TWO, params).json() == {"successful_rows": 2, "quarantined_rows": 0}


def test_content_type_is_ignored(events: Local) -> None:
    for content_type in (
        "application/x-ndjson",
        "application/json",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
    ):
        response = post(events, TWO, headers={"Content-Type": content_type})
        assert response.json() == {"successful_rows": 2, "quarantined_rows": 0}, content_type


def test_empty_body(events: Local) -> None:
    assert post(events, b"").json() == {"successful_rows": 0, "quarantined_rows": 0}
    assert post(events, b"", "name=events_test&wait=true").status_code == 200


def test_mixed_batch_quarantines_bad_rows_and_lands_good_ones(events: Local) -> None:
    body = (
        b'{"date": "2020-04-05 00:05:38", "city": "Good"}\n'
        b'{"date": "not a date", "city": "Bad"}\n'
        b"this is not json\n"
        b"[1, 2]\n"
        b'{"date": "2020-04-05 00:05:38", "city": 7}\n'
    )
    response = post(events, body, "name=events_test&wait=true&quarantine_details=true")
    assert response.status_code == 200
    body_json = response.json()
    assert (body_json["successful_rows"], body_json["quarantined_rows"]) == (1, 4)
    assert [d["line"] for d in body_json["quarantine"]] == [2, 3, 4, 5]
    assert rows(events, "SELECT city FROM {db}.events_test") == [{"city": "Good"}]
    quarantined = rows(
        events,
        "SELECT city, c__error_column, c__error, c__import_id FROM {db}.events_test_quarantine "
        "ORDER BY insertion_date, city",
    )
    assert len(quarantined) == 4
    by_city = {r["city"]: r for r in quarantined}
    assert by_city["Bad"]["c__error_column"] == ["date"]
    assert by_city["Bad"]["c__error"] == [
        "Error DateTime parser failed. While processing column 'date' with jsonpath '$.date'"
    ]
    assert by_city["Bad"]["c__import_id"] is None
    assert by_city["7"]["c__error_column"] == ["city"]
    no_city = [r for r in quarantined if r["city"] is None]
    assert sorted(r["c__error"][0] for r in no_city) == [
        "JSON root must be an object, but it was a list",
        "Line is not a valid JSON: 'this is not json'",
    ]
    # Without the flag the extension key is never added.
    plain = post(events, body).json()
    assert plain == {"successful_rows": 1, "quarantined_rows": 4}


def test_cors_preflight_and_405(events: Local) -> None:
    preflight = events.client.options(
        "/v0/events?name=events_test",
        headers={
            "Origin": "https://example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert preflight.headers["access-control-allow-methods"] == "POST"
    assert preflight.headers["access-control-allow-headers"] == "content-type"
    assert preflight.headers["access-control-max-age"] == "600"
    assert "access-control-allow-credentials" not in preflight.headers
    wrong = events.client.get("/v0/events?name=events_test")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST, OPTIONS"


def test_restricted_cors_origins(make_local: Any) -> None:
    local = make_local(**{"events.cors_allow_origins": "https://a.example"})
    local.create_datasource("events_test", SCHEMA)
    ok = post(local, TWO, headers={"Origin": "https://a.example"})
    assert ok.headers["access-control-allow-origin"] == "https://a.example" and ok.headers["vary"] == "Origin"
    other = post(local, TWO, headers={"Origin": "https://b.example"})
    assert "access-control-allow-origin" not in other.headers


def test_large_request_of_100k_rows(events: Local) -> None:
    body = b"".join(b'{"date": "2020-04-05 00:05:38", "city": "c%d"}\n' % i for i in range(100_000))
    response = post(events, body, "name=events_test&wait=true")
    assert response.json() == {"successful_rows": 100_000, "quarantined_rows": 0}
    assert rows(events, "SELECT count() c, uniqExact(city) u FROM {db}.events_test") == [{"c": 100_000, "u": 100_000}]


def test_ten_megabyte_single_line_and_unicode(events: Local) -> None:
    city = 'ü€😀"\\\n\t' + "x" * 10_000_000
    body = json.dumps({"date": "2020-04-05 00:05:38", "city": city}).encode()
    assert post(events, body, "name=events_test&wait=true").json() == {"successful_rows": 1, "quarantined_rows": 0}
    stored = rows(events, "SELECT length(city) n, leftUTF8(city, 8) head FROM {db}.events_test")
    assert stored == [{"n": len(city.encode()), "head": city[:8]}]


def test_deep_nesting_does_not_crash(events: Local) -> None:
    deep = b'{"date": "2020-04-05 00:05:38", "city": "x", "n": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    response = post(events, deep)
    assert response.status_code == 202
    assert sum(response.json().values()) == 1


def test_line_length_cap_quarantines_without_parsing(make_local: Any) -> None:
    local = make_local(**{"events.max_line_bytes": 1000})
    local.create_datasource("events_test", SCHEMA)
    long_line = json.dumps({"date": "2020-04-05 00:05:38", "city": "x" * 2000}).encode()
    body = b'{"date": "2020-04-05 00:05:38", "city": "ok"}\n' + long_line
    response = post(local, body, "name=events_test&wait=true&quarantine_details=true")
    assert response.json()["successful_rows"] == 1 and response.json()["quarantined_rows"] == 1
    assert response.json()["quarantine"][0]["errors"][0].startswith("Line exceeds 1000 bytes and was not parsed: '{")
