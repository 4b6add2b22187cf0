"""Auto-create from the first events (SPEC §9.1, classic mode)."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.http.conftest import Local

SPEC_EVENT = b'{"store_id":1,"purchase":{"product_name":"shoes","datetime":"2022-01-05 12:13:14"}}'


def post(local: Local, name: str, body: bytes, token: str | None = None, params: str = "") -> Any:
    return local.client.post(f"/v0/events?name={name}{params}", content=body, headers=local.auth(token))


def test_missing_datasource_is_created_from_the_events(local: Local) -> None:
    response = post(local, "purchases", SPEC_EVENT + b"\n" + SPEC_EVENT, params="&wait=true")
    assert response.status_code == 200, response.text
    assert response.json() == {"successful_rows": 2, "quarantined_rows": 0}
    described = local.client.get("/v0/datasources/purchases", headers=local.auth()).json()
    assert described["schema"]["sql_schema"] == (
        "`purchase_datetime` DateTime `json:$.purchase.datetime`, "
        "`purchase_product_name` String `json:$.purchase.product_name`, "
        "`store_id` Int16 `json:$.store_id`"
    )
    assert described["type"] == "ndjson"
    rows = local.client.get("/v0/sql", params={"q": "SELECT * FROM purchases LIMIT 1"}, headers=local.auth()).json()
    assert rows["data"] == [
        {"purchase_datetime": "2022-01-05 12:13:14", "purchase_product_name": "shoes", "store_id": 1}
    ]
    # The quarantine table exists too.
    quarantine = local.client.get(
        "/v0/sql", params={"q": "SELECT count() c FROM purchases_quarantine"}, headers=local.auth()
    )
    assert quarantine.json()["data"] == [{"c": 0}]


def test_create_scope_can_autocreate_append_scope_cannot(local: Local) -> None:
    local.create_datasource("existing", "a Int32 `json:$.a`")
    creator = local.create_token("creator", "DATASOURCES:CREATE")
    appender = local.create_token("appender", "DATASOURCES:APPEND:existing")
    denied = post(local, "fresh", b'{"a":1}', token=appender)
    assert (denied.status_code, denied.text) == (403, "Invalid token for DS autocreation\n")
    assert post(local, "fresh", b'{"a":1}', token=creator).status_code == 202
    assert local.client.get("/v0/datasources/fresh", headers=local.auth()).status_code == 200


def test_autocreate_errors(make_local: Callable[..., Local]) -> None:
    local = make_local(**{"limits.max_datasources_per_workspace": 1})
    bad_name = post(local, "bad-name", b'{"a":1}')
    assert (bad_name.status_code, bad_name.text) == (400, "Invalid Data Source name 'bad-name'\n")
    empty = post(local, "empty_ds", b"")
    assert empty.status_code == 400
    assert empty.text.startswith("Analysis error, invalid data. We could not infer the schema")
    only_nulls = post(local, "nulls_ds", b'{"a": null}\n{"b": {}}')
    assert only_nulls.status_code == 400
    assert post(local, "first", b'{"a":1}').status_code == 202
    limited = post(local, "second", b'{"a":1}')
    assert (limited.status_code, limited.text) == (400, "Data Source limit reached (1)\n")
    names = [d["name"] for d in local.client.get("/v0/datasources", headers=local.auth()).json()["datasources"]]
    assert names == ["first"]


def test_concurrent_first_requests_create_once(local: Local) -> None:
    def send(i: int) -> int:
        body = "\n".join(json.dumps({"n": i * 10 + j, "tag": f"t{i}"}) for j in range(10)).encode()
        status: int = post(local, "racy", body, params="&wait=true").status_code
        return status

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(send, range(8)))
    assert statuses == [200] * 8
    listed = [d for d in local.client.get("/v0/datasources", headers=local.auth()).json()["datasources"]]
    assert [d["name"] for d in listed] == ["racy"]
    counted = local.client.get(
        "/v0/sql", params={"q": "SELECT count() c, uniqExact(n) u FROM racy"}, headers=local.auth()
    ).json()
    assert counted["data"] == [{"c": 80, "u": 80}]


def test_later_rows_with_new_keys_are_ignored(local: Local) -> None:
    assert post(local, "shape", b'{"a": 1}', params="&wait=true").status_code == 200
    response = post(local, "shape", b'{"a": 2, "b": "new"}', params="&wait=true")
    assert response.json() == {"successful_rows": 1, "quarantined_rows": 0}
    columns = local.client.get("/v0/datasources/shape", headers=local.auth()).json()["columns"]
    assert [c["name"] for c in columns] == ["a"]
