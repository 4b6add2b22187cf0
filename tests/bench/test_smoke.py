"""The benchmark harness still works end to end: every scenario for ~1 s with minimal sizes.

No thresholds (a shared CI machine is too noisy); the numbers go to the log. ClickHouse and wrk are used
when installed and skipped otherwise, so a fresh venv built from pyproject runs this.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import main

pytestmark = pytest.mark.slow


def test_smoke_suite_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "results"
    result = main(["--smoke", "--duration", "1", "--shapes", "flat", "--results", str(out)])

    scenarios = {c["scenario"] for c in result["comparisons"]}
    assert {"batched", "small", "wait", "drain"} <= scenarios
    batched = [m for m in result["measurements"] if m["scenario"] == "batched" and m["target"] == "birdhouse"]
    assert batched and batched[0]["ok"] > 0
    assert batched[0]["stored_rows"] >= batched[0]["rows"]
    saved = json.loads((out / "results.json").read_text())
    assert saved["machine"]["nproc"] >= 1
    assert (out / "results.md").read_text().startswith("| scenario")
    assert (out / "throughput_ratio.png").stat().st_size > 0
    assert (out / "latency_cdf.png").stat().st_size > 0
