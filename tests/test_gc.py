"""A server process tunes the garbage collector once its runtime is open (birdhouse/app.py tune_gc)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

_PROBE = """
import gc, json, sys
from starlette.testclient import TestClient
from birdhouse.app import GC_THRESHOLDS, create_app
from birdhouse.config import load_settings

settings = load_settings(environ={"BIRDHOUSE_SERVER__DATA_DIR": sys.argv[1]})
before = (gc.get_threshold(), gc.get_freeze_count())
with TestClient(create_app(settings, long_running=sys.argv[2] == "1")) as client:
    status = client.get("/v0/health").status_code
    during = (gc.get_threshold(), gc.get_freeze_count())
print(json.dumps({"before": before, "during": during, "status": status, "wanted": GC_THRESHOLDS}))
"""


def _probe(data_dir: Path, long_running: bool) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(data_dir), "1" if long_running else "0"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_a_server_process_freezes_its_start_up_objects_and_collects_less_often(tmp_path: Path) -> None:
    tuned = _probe(tmp_path / "a", long_running=True)
    assert tuned["status"] == 200
    assert tuned["before"][0] == [700, 10, 10]
    assert tuned["during"][0] == tuned["wanted"]
    assert isinstance(tuned["during"][1], int) and tuned["during"][1] > 1000


def test_an_app_inside_another_process_leaves_its_collector_alone(tmp_path: Path) -> None:
    untouched = _probe(tmp_path / "b", long_running=False)
    assert untouched["during"] == untouched["before"]
