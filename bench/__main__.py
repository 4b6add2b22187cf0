"""``python -m bench``: start birdhouse and the references on loopback, run the suite, write results."""

from __future__ import annotations

import argparse
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

from bench import events, profile, report, wrk
from bench.load import LoadRunner
from bench.scenarios import ALL_SCENARIOS, Config, Suite
from bench.servers import Birdhouse, ClickHouse, Trivial, clickhouse_binary


def parse(argv: list[str] | None = None) -> tuple[Config, argparse.Namespace]:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--duration", type=float, default=60.0, help="seconds per load run (default 60)")
    p.add_argument("--repeat", type=int, default=1, help="runs per scenario; ratios are medians (default 1)")
    p.add_argument("--connections", type=int, default=8, help="connections for batched bodies (default 8)")
    p.add_argument("--small-connections", type=int, default=32, help="connections for single events (default 32)")
    p.add_argument(
        "--wait-connections",
        type=int,
        default=None,
        help="connections for the wait scenario's closed loops, wait=true and wait=false alike (128; 8 with --smoke)",
    )
    p.add_argument("--shapes", default=",".join(events.SHAPES), help="flat,web")
    p.add_argument("--scenarios", default=",".join(ALL_SCENARIOS), help=",".join(ALL_SCENARIOS))
    p.add_argument("--soak", type=float, default=0.0, metavar="MINUTES", help="soak at 80 %% of max (off)")
    p.add_argument(
        "--soak-fraction", type=float, default=0.8, help="the soak's rate as a fraction of the batched max (0.8)"
    )
    p.add_argument(
        "--drain-rows", type=int, default=10_000_000, help="rows waiting in the WAL for the drain scenario (10 M)"
    )
    p.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    p.add_argument("--no-clickhouse", action="store_true", help="skip the ClickHouse server reference")
    p.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    p.add_argument("--smoke", action="store_true", help="minimal sizes for CI: tiny drain, short chDB reference")
    p.add_argument("--keep-workdir", action="store_true")
    p.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for birdhouse (default: BIRDHOUSE_LIMITS__WORKSPACE_RPS=0, see docs/benchmarks.md)",
    )
    p.add_argument("--py-spy", action="store_true", help="profile birdhouse with py-spy during run 0 of each load")
    a = p.parse_args(argv)
    config = Config(
        duration_s=a.duration,
        connections=a.connections,
        small_connections=a.small_connections,
        wait_connections=a.wait_connections or (8 if a.smoke else Config.wait_connections),
        repeat=a.repeat,
        shapes=tuple(s for s in a.shapes.split(",") if s),
        scenarios=tuple(s for s in a.scenarios.split(",") if s),
        soak_min=a.soak,
        soak_fraction=a.soak_fraction,
        drain_rows=20_000 if a.smoke else a.drain_rows,
        distinct_bodies=4 if a.smoke else 16,
        chdb_max_s=1.0 if a.smoke else 10.0,
        drain_timeout_s=30.0 if a.smoke else 300.0,
        stall_s=3.0 if a.smoke else 10.0,
        py_spy=a.py_spy,
    )
    for shape in config.shapes:
        if shape not in events.SHAPES:
            p.error(f"unknown shape {shape}")
    for scenario in config.scenarios:
        if scenario not in ALL_SCENARIOS:
            p.error(f"unknown scenario {scenario}")
    return config, a


# The workspace rate limit (1,000 req/s by default, SPEC D6) is policy, not capacity: off while measuring.
DEFAULT_SERVER_ENV = {"BIRDHOUSE_LIMITS__WORKSPACE_RPS": "0"}


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # run the finally blocks: stop the servers by pid


def main(argv: list[str] | None = None) -> dict[str, Any]:
    config, args = parse(argv)
    if config.py_spy and not profile.available():
        raise SystemExit("--py-spy needs py-spy (.venv/bin/pip install py-spy)")
    server_env = {**DEFAULT_SERVER_ENV, **dict(kv.split("=", 1) for kv in args.server_env)}
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, _terminate)
    use_wrk = args.loadgen == "wrk" or (args.loadgen == "auto" and wrk.available())
    if args.loadgen == "wrk" and not wrk.available():
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    workdir = Path(tempfile.mkdtemp(prefix="birdhouse-bench-"))
    started = time.time()
    notes: list[str] = []
    servers: list[Any] = []
    try:
        bh = Birdhouse(workdir, server_env)
        servers.append(bh)
        trivial = Trivial(workdir)
        servers.append(trivial)
        ch: ClickHouse | None = None
        binary = clickhouse_binary()
        if args.no_clickhouse:
            notes.append("ClickHouse server reference skipped (--no-clickhouse).")
        elif binary is None:
            notes.append(
                "ClickHouse server reference skipped: no clickhouse-server binary"
                " (apt-get install -y clickhouse-server)."
            )
        else:
            try:
                ch = ClickHouse(workdir, binary)
                servers.append(ch)
            except RuntimeError as exc:
                notes.append(f"ClickHouse server reference skipped: it did not start ({str(exc)[:200]}).")
        for note in notes:
            print(f"[bench] note: {note}")
        suite = Suite(config, workdir, bh, trivial, ch, LoadRunner(workdir, use_wrk), notes=notes)
        suite.log(f"birdhouse pid {bh.pid} on {bh.url}; generator {'wrk' if use_wrk else 'bench.loadgen'}")
        suite.run()
        result: dict[str, Any] = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "elapsed_s": time.time() - started,
            "command": report.command(),
            "machine": report.machine(),
            "config": {k: v for k, v in asdict(config).items()},
            "generator": "wrk" if use_wrk else "bench.loadgen",
            "clickhouse_version": ch.version if ch else None,
            "birdhouse_command": bh.command,
            "birdhouse_env": server_env,
            "notes": suite.notes,
            "comparisons": suite.comparisons,
            "measurements": suite.measurements,
            "soak": suite.soak,
            "profiles": suite.profiles,
        }
    finally:
        for server in reversed(servers):
            server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    json_path, md_path, pngs = report.write(result, args.results)
    print(report.markdown(result))
    print(f"[bench] wrote {json_path}, {md_path}, " + ", ".join(str(p) for p in pngs))
    return result


if __name__ == "__main__":
    main()
