"""Dead letters repaired by the operator (SPEC §8.4): re-run only the failed
views over parked rows, or deliver other letters again."""

from __future__ import annotations

import json
from pathlib import Path

from birdhouse.pipeline.deliver import _dead_letter
from birdhouse.pipeline.records import AcceptedBatch
from tests.apps import Local
from tests.pipes.conftest import create_pipe, sql
from tests.pipes.test_mv_failures import DIV_PIPE, setup

FIXED_PIPE = DIV_PIPE.replace("intDiv(100, amount)", "if(amount = 0, -1, intDiv(100, amount))")


def _letters(app: Local) -> list[dict[str, object]]:
    response = app.client.get("/v0/deadletter", headers=app.auth(app.user))
    assert response.status_code == 200, response.text
    letters: list[dict[str, object]] = response.json()["letters"]
    return letters


def test_failed_view_is_rerun_alone_after_the_fix(app: Local) -> None:
    setup(app)
    body = "\n".join(json.dumps({"id": f"r{i}", "amount": i}) for i in range(3)).encode()
    assert app.client.post("/v0/events?name=events&wait=true", content=body, headers=app.auth()).status_code == 422
    assert sql(app, "SELECT count() AS n FROM ratios") == [{"n": 0}]
    [letter] = _letters(app)
    assert letter["failed_views"] == ["div_mv__n_mv"] and letter["rows"] == 3
    assert app.client.get("/v0/deadletter", headers=app.auth()).status_code == 403  # operator only
    # Still broken: the repair fails and the letter stays.
    name = str(letter["name"])
    still = app.client.post(f"/v0/deadletter/{name}/replay", headers=app.auth(app.user))
    assert still.status_code == 409 and "Division by zero" in still.json()["error"]
    assert sql(app, "SELECT count() AS n FROM ratios") == [{"n": 0}]
    # Fix the view, repair: the target gets the rows once, the landing table is not touched.
    assert create_pipe(app, "div_mv", FIXED_PIPE, force="true").status_code == 200
    repaired = app.client.post(f"/v0/deadletter/{name}/replay", headers=app.auth(app.user))
    assert repaired.status_code == 200, repaired.text
    assert sql(app, "SELECT id, ratio FROM ratios ORDER BY id") == [
        {"id": "r0", "ratio": -1},
        {"id": "r1", "ratio": 100},
        {"id": "r2", "ratio": 50},
    ]
    assert sql(app, "SELECT count() AS n FROM events") == [{"n": 3}]
    assert _letters(app) == []
    again = app.client.post(f"/v0/deadletter/{name}/replay", headers=app.auth(app.user))
    assert again.status_code == 404
    # No scratch tables are left behind.
    ws = app.runtime.default_workspace()
    assert ws is not None
    left = app.runtime.backend.query(
        "SELECT count() FROM system.tables WHERE database = {d:String} AND name LIKE 'bh_repair%'",
        "TSVRaw",
        params={"d": ws.database},
    )
    assert left.body == b"0\n"


def test_other_letters_are_delivered_again(app: Local) -> None:
    app.create_datasource("plain", "id String `json:$.id`")
    ws = app.runtime.default_workspace()
    ds = app.runtime.catalog.find_datasource(ws.id if ws else "", "plain")
    assert ws is not None and ds is not None
    batch = AcceptedBatch("req-x", ws.id, ds.id, ("id",), b'{"id":"a"}\n{"id":"b"}\n', b"", 2, 0)
    directory = Path(app.settings.server.data_dir) / "deadletter"
    _dead_letter(directory, [batch], "Code: 999. simulated refusal")
    [letter] = _letters(app)
    repaired = app.client.post(f"/v0/deadletter/{letter['name']}/replay", headers=app.auth(app.user))
    assert repaired.status_code == 200, repaired.text
    assert sql(app, "SELECT id FROM plain ORDER BY id") == [{"id": "a"}, {"id": "b"}]
    assert (directory / "replayed" / str(letter["name"])).exists()
