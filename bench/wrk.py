"""Closed-loop load with ``wrk`` (C, epoll): far cheaper per request than any Python client, so on a
2-core machine it leaves the server more CPU. Used when ``wrk`` is on PATH; the Python generator
(bench.loadgen) is the fallback and the only open-loop (fixed-rate) generator.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

_LUA = r"""
local files = {FILES}
local reqs = {}
local idx = 0
init = function(args)
  for i, path in ipairs(files) do
    local f = assert(io.open(path, "rb"))
    reqs[i] = f:read("*a")
    f:close()
  end
  idx = math.random(#reqs)
end
request = function()
  idx = idx % #reqs + 1
  return reqs[idx]
end
done = function(summary, latency, requests)
  local e = summary.errors
  local out = string.format(
    '{"duration_us":%d,"requests":%d,"status_errors":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"lat":[',
    summary.duration, summary.requests, e.status, e.connect, e.read, e.write, e.timeout)
  local points = {PCTS}
  for i, p in ipairs(points) do
    if i > 1 then out = out .. "," end
    out = out .. string.format("[%g,%d]", p, latency:percentile(p))
  end
  io.write("WRKJSON" .. out .. string.format('],"max":%d}\n', latency.max))
end
"""

# wrk's percentile(100) is not the maximum (it can return 0): latency.max is reported instead.
PCTS = [0.1, 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, *range(2, 100, 2)]


def available() -> bool:
    return shutil.which("wrk") is not None


def run(
    url: str,
    request_files: list[Path],
    connections: int,
    duration_s: float,
    rows_per_request: int,
    workdir: Path,
    threads: int = 1,
) -> dict[str, Any]:
    script = workdir / "wrk.lua"
    files = "{" + ",".join(json.dumps(str(p)) for p in request_files) + "}"
    points = "{" + ",".join(f"{p:g}" for p in sorted(set(PCTS))) + "}"
    script.write_text(_LUA.replace("{FILES}", files).replace("{PCTS}", points))
    cmd = [
        "wrk",
        f"-t{max(1, min(threads, connections))}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "60s",
        "-s",
        str(script),
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 120, check=False)  # noqa: S603
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRKJSON")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    raw = json.loads(line[len("WRKJSON") :])
    elapsed = raw["duration_us"] / 1e6
    ok = raw["requests"] - raw["status_errors"]
    cdf = sorted([*((float(p), us / 1e3) for p, us in raw["lat"]), (100.0, raw["max"] / 1e3)])
    pct = dict(cdf)
    return {
        "elapsed_s": elapsed,
        "ok": ok,
        "rows": ok * rows_per_request,
        "requests_per_s": ok / elapsed,
        "rows_per_s": ok * rows_per_request / elapsed,
        "statuses": {},
        "non_2xx": raw["status_errors"],
        "errors": raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        "latency_ms": {"p50": pct[50.0], "p90": pct[90.0], "p99": pct[99.0], "p99.9": pct[99.9]},
        "cdf_ms": cdf,
        "series": [],
    }
