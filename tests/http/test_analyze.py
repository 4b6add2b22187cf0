"""POST /v0/analyze (SPEC §9.3), and inferred schemas against the real engine: the table an
inference creates in chDB takes every sampled row through /v0/events without quarantine."""

from __future__ import annotations

import gzip
import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route

from birdhouse.http import analyze as analyze_module
from birdhouse.schema.columns import parse_schema
from birdhouse.schema.infer import Inference, infer_schema
from tests.apps import Local
from tests.schema.test_infer_samples import FLOCK, OTEL_LOGS, SHAPES, fill, ndjson

SPEC_SAMPLE = b'{"store_id":1,"purchase":{"product_name":"shoes","datetime":"2022-01-05 12:13:14"}}\n'
INVALID = {"error": analyze_module.INVALID_DATA}


@pytest.fixture
def app(local: Local) -> Local:
    """The app with /v0/analyze routed (until app.py registers analyze.routes itself)."""
    routes = local.client.app.router.routes  # type: ignore[attr-defined]
    if not any(isinstance(r, Route) and r.path == "/v0/analyze" for r in routes):
        routes.extend(analyze_module.routes)
    return local


def post(local: Local, body: bytes, headers: dict[str, str] | None = None) -> Any:
    return local.client.post("/v0/analyze", content=body, headers={**local.auth(), **(headers or {})})


def test_spec_example_response(app: Local) -> None:
    response = post(app, SPEC_SAMPLE)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "analysis": {
            "columns": [
                {
                    "path": "$.purchase.datetime",
                    "recommended_type": "DateTime",
                    "present_pct": 1,
                    "name": "purchase_datetime",
                },
                {
                    "path": "$.purchase.product_name",
                    "recommended_type": "String",
                    "present_pct": 1,
                    "name": "purchase_product_name",
                },
                {"path": "$.store_id", "recommended_type": "Int16", "present_pct": 1, "name": "store_id"},
            ],
            "schema": "purchase_datetime DateTime `json:$.purchase.datetime`, "
            "purchase_product_name String `json:$.purchase.product_name`, store_id Int16 `json:$.store_id`",
        },
        "preview": {
            "meta": [
                {"name": "purchase_datetime", "type": "DateTime"},
                {"name": "purchase_product_name", "type": "String"},
                {"name": "store_id", "type": "Int16"},
            ],
            "data": [{"purchase_datetime": "2022-01-05 12:13:14", "purchase_product_name": "shoes", "store_id": 1}],
        },
    }


def test_preview_shows_stored_values(app: Local) -> None:
    body = ndjson([{"ts": "2022-10-27T11:43:02.099+02:00", "n": 1.5, "tags": ["a"]}, {"ts": None, "n": 2}])
    response = post(app, body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert [c["present_pct"] for c in result["analysis"]["columns"]] == [1, 0.5, 0.5]
    assert result["preview"]["data"] == [
        {"n": 1.5, "ts": "2022-10-27 09:43:02.099", "tags": ["a"]},  # offsets applied: stored in UTC
        {"n": 2.0, "ts": None, "tags": []},  # an absent array takes its DEFAULT []
    ]


def test_multipart_ndjson_and_file_fields(app: Local) -> None:
    for field in ("ndjson", "file"):
        response = app.client.post(
            "/v0/analyze", headers=app.auth(), files={field: ("events.ndjson", SPEC_SAMPLE, "application/x-ndjson")}
        )
        assert response.status_code == 200, response.text
        assert response.json()["analysis"]["schema"].startswith("purchase_datetime DateTime")
    for files in (None, {"other": ("x.txt", b"", "text/plain")}):  # urlencoded, then a multipart text field
        form = {"ndjson": SPEC_SAMPLE.decode()}
        as_field = app.client.post("/v0/analyze", headers=app.auth(), data=form, files=files)
        assert as_field.status_code == 200
        assert [c["name"] for c in as_field.json()["analysis"]["columns"]][-1] == "store_id"


def test_raw_ndjson_labelled_as_a_form(app: Local, monkeypatch: pytest.MonkeyPatch) -> None:
    # What `curl --data-binary @events.ndjson` sends.
    response = post(app, SPEC_SAMPLE, {"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200, response.text
    assert response.json()["analysis"]["columns"][0]["name"] == "purchase_datetime"
    monkeypatch.setattr(analyze_module, "_limits", lambda request: (64, 100, 10_000))
    big_form = app.client.post("/v0/analyze", headers=app.auth(), data={"ndjson": SPEC_SAMPLE.decode() * 2})
    assert (big_form.status_code, big_form.json()) == (413, {"error": "Form bodies are limited to 100 bytes"})


def test_refused_inputs(app: Local) -> None:
    csv = app.client.post("/v0/analyze", headers=app.auth(), files={"csv": ("a.csv", b"a,b\n1,2\n", "text/csv")})
    assert (csv.status_code, csv.json()) == (400, {"error": "CSV analysis is not supported"})
    for response in (
        app.client.post("/v0/analyze", params={"url": "https://example.com/x.ndjson"}, headers=app.auth()),
        app.client.post("/v0/analyze", data={"url": "https://example.com/x.ndjson"}, headers=app.auth()),
    ):
        assert response.status_code == 400
        assert "remote URLs" in response.json()["error"]


@pytest.mark.parametrize("body", [b"", b"\n\n", b"not json\n", b"[1, 2]\n", b'{"a": null}\n', b'{"a": {}}\n'])
def test_invalid_or_empty_data_is_400(app: Local, body: bytes) -> None:
    response = post(app, body)
    assert (response.status_code, response.json()) == (400, INVALID)
    empty_form = app.client.post("/v0/analyze", headers=app.auth(), data={"other": "x"})
    assert (empty_form.status_code, empty_form.json()) == (400, INVALID)


def test_needs_a_valid_workspace_token(app: Local) -> None:
    assert app.client.post("/v0/analyze", content=SPEC_SAMPLE).status_code == 403
    bad = app.client.post("/v0/analyze", content=SPEC_SAMPLE, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 403
    user = app.client.post("/v0/analyze", content=SPEC_SAMPLE, headers=app.auth(app.user))
    assert user.status_code == 403
    creator = app.create_token("creator", "DATASOURCES:CREATE")
    assert app.client.post("/v0/analyze", content=SPEC_SAMPLE, params={"token": creator}).status_code == 200


def test_gzip_body(app: Local) -> None:
    response = post(app, gzip.compress(SPEC_SAMPLE), {"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert response.json()["analysis"]["columns"][-1]["name"] == "store_id"


def test_bad_compressed_bodies(app: Local, monkeypatch: pytest.MonkeyPatch) -> None:
    corrupt = post(app, gzip.compress(SPEC_SAMPLE)[:-6], {"Content-Encoding": "gzip"})
    assert (corrupt.status_code, corrupt.json()) == (400, {"error": "Invalid gzip body"})
    unknown = post(app, SPEC_SAMPLE, {"Content-Encoding": "snappy"})
    assert unknown.status_code == 415
    monkeypatch.setattr(analyze_module, "_limits", lambda request: (64, 200, 10_000))
    # A compressed sample cannot be cut at a line: over the cap, on the wire or inflated, it is refused.
    wire = post(app, gzip.compress(bytes(range(256)) * 4), {"Content-Encoding": "gzip"})  # 298 bytes
    assert (wire.status_code, wire.json()) == (413, {"error": "Compressed analysis samples are limited to 200 bytes"})
    inflated = post(app, gzip.compress(SPEC_SAMPLE * 20))  # 114 bytes, sniffed by its magic bytes
    assert inflated.status_code == 413
    assert inflated.json()["error"].endswith("decompressed body exceeds 200 bytes")


def test_large_bodies_are_sampled_not_read_whole(app: Local, monkeypatch: pytest.MonkeyPatch) -> None:
    # An initial sample bigger than the cap: only the cap can keep `late` out.
    monkeypatch.setattr(analyze_module, "_limits", lambda request: (1 << 20, 1024, 10_000))
    early = b"".join(b'{"n": %d, "s": "x"}\n' % i for i in range(100))  # ~1.9 KB: past the cap
    late = b'{"late": 1}\n' * 10
    response = post(app, early + late)
    assert response.status_code == 200, response.text
    result = response.json()
    assert [c["name"] for c in result["analysis"]["columns"]] == ["n", "s"]  # `late` was never read
    assert len(result["preview"]["data"]) == analyze_module.PREVIEW_ROWS


def test_tb_cli_style_sample_cut_mid_line(app: Local) -> None:
    # The tb CLI posts the first MiB of a file: the last line is usually partial.
    body = SPEC_SAMPLE * 3 + SPEC_SAMPLE[:20]
    response = post(app, body)
    assert response.status_code == 200
    assert len(response.json()["preview"]["data"]) == 3


# --- the inferred schema against real chDB ---------------------------------------------------


def create_and_ingest(local: Local, name: str, sample: bytes) -> Inference:
    inference = infer_schema(sample)
    assert inference.columns, sample
    assert parse_schema(inference.schema) == inference.columns
    engine = {
        key: value
        for key, value in (
            ("engine_sorting_key", inference.engine.sorting_key),
            ("engine_partition_key", inference.engine.partition_key),
        )
        if value
    }
    local.create_datasource(name, inference.schema, **engine)
    response = local.client.post(f"/v0/events?name={name}&wait=true", content=sample, headers=local.auth())
    assert response.status_code == 200, response.text
    lines = sum(1 for line in sample.splitlines() if line.strip())
    assert response.json() == {"successful_rows": lines, "quarantined_rows": 0}
    return inference


KITCHEN_SINK = [
    {
        "id": 2**40,
        "big": 2**64,
        "ok": True,
        "price": 19.99,
        "ratio": 0.123456789,
        "day": "1950-03-04",
        "at": "2024-01-15 10:30:00",
        "old": "1960-01-01T00:00:00",
        "tags": ["a", None],
        "items": [{"sku": "x", "qty": 1}, {"sku": "y"}],
        "$meta": {"a-b": "c", "it's": "q"},
        "index": 1,
    },
    {"id": 7, "big": -1, "ok": False, "price": 5, "ratio": 1, "day": "2000-02-29", "at": "2024-01-16 00:00:00"},
]


@pytest.mark.parametrize(
    ("name", "rows"),
    [("spec_example", [json.loads(SPEC_SAMPLE)]), ("flock", FLOCK), ("otel_logs", OTEL_LOGS), ("sink", KITCHEN_SINK)],
)
def test_inferred_table_takes_every_sampled_row(local: Local, name: str, rows: list[Any]) -> None:
    inference = create_and_ingest(local, name, ndjson(rows))
    response = local.client.get("/v0/sql", params={"q": f"SELECT count() c FROM {name}"}, headers=local.auth())
    assert response.json()["data"] == [{"c": len(rows)}]
    assert inference.rows == len(rows)


def test_inferred_values_round_trip_through_the_engine(local: Local) -> None:
    create_and_ingest(local, "sink_values", ndjson(KITCHEN_SINK))
    q = "SELECT big, day, old, tags, items__qty, DOLLAR_SIGN_meta_it__s FROM sink_values ORDER BY id FORMAT JSON"
    data = local.client.get("/v0/sql", params={"q": q}, headers=local.auth()).json()["data"]
    assert [row["day"] for row in data] == ["2000-02-29", "1950-03-04"]
    assert data[1]["old"] == "1960-01-01 00:00:00"
    assert str(data[1]["big"]) == str(2**64)
    assert data[0]["tags"] == [] and data[1]["tags"] == ["a", None]
    assert data[1]["items__qty"] == [1, None]
    # The path writes the key it's as it\'s; the backslash and the quote both become `_`.
    assert data[1]["DOLLAR_SIGN_meta_it__s"] == "q"


SHAPE_IDS = itertools.count()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["a", "b-c", "d.e", "$f", "1g"]), SHAPES, min_size=1, max_size=4), st.data())
def test_random_shapes_create_and_ingest_in_chdb(local: Local, shape: dict[str, Any], data: st.DataObject) -> None:
    rows = [fill(shape, data) for _ in range(data.draw(st.integers(min_value=1, max_value=4)))]
    sample = ndjson(rows)
    if not infer_schema(sample).columns:
        return  # e.g. only arrays of arrays: nothing to create
    create_and_ingest(local, f"shape_{next(SHAPE_IDS)}", sample)
