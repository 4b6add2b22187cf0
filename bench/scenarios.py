"""The scenarios, each against birdhouse and its reference in the same run (issue 8).

Every scenario appends measurements (one per target and repetition) and comparisons (birdhouse vs its
reference, one ratio per repetition, the median quoted). Repetitions interleave birdhouse and the
reference so a noisy neighbour hurts both alike.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench import events, profile
from bench.load import LoadRunner, Request
from bench.servers import Birdhouse, ClickHouse, Trivial
from bench.trivial import DURABLE_PREFIX

ALL_SCENARIOS = ("loadgen", "batched", "small", "wait", "compressed", "drain")


@dataclass(frozen=True)
class Config:
    duration_s: float = 60.0
    connections: int = 8
    small_connections: int = 32
    # wait=true's closed-loop throughput grows with the requests in flight (each waits for a flush) up
    # to ≈ 128 on the benchmark machine; wait=false with as many is CPU-bound either way (docs/benchmarks.md).
    wait_connections: int = 128
    repeat: int = 1
    shapes: tuple[str, ...] = events.SHAPES
    scenarios: tuple[str, ...] = ALL_SCENARIOS
    soak_min: float = 0.0
    # The soak's offered rate as a fraction of the batched closed-loop maximum (the 80 %).
    soak_fraction: float = 0.8
    drain_rows: int = 10_000_000
    distinct_bodies: int = 16
    batch_rows: int = 1000
    wait_rows: int = 100
    chdb_batch_rows: int = 100_000
    chdb_max_s: float = 10.0
    sample_s: float = 5.0
    drain_timeout_s: float = 300.0
    # Give up waiting for count() when it has not moved for this long.
    stall_s: float = 10.0
    py_spy: bool = False


@dataclass
class Suite:
    config: Config
    workdir: Path
    bh: Birdhouse
    trivial: Trivial
    ch: ClickHouse | None
    loads: LoadRunner
    notes: list[str] = field(default_factory=list)
    measurements: list[dict[str, Any]] = field(default_factory=list)
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    soak: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, Any] = field(default_factory=dict)
    _bodies: dict[tuple[str, int, bool, str], list[bytes]] = field(default_factory=dict)
    _seq: int = 0

    # helpers ------------------------------------------------------------------------------------------

    def log(self, message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)

    def bodies(self, shape: str, rows: int, encoding: str = "identity", payload_as_string: bool = False) -> list[bytes]:
        key = (shape, rows, payload_as_string, encoding)
        if key not in self._bodies:
            count = self.config.distinct_bodies if rows > 1 else 256
            plain = events.bodies(shape, rows, count, payload_as_string)
            self._bodies[key] = [events.compress(b, encoding) for b in plain]
        return self._bodies[key]

    def ds_name(self, prefix: str) -> str:
        self._seq += 1
        return f"bench_{prefix}_{self._seq}"

    def record(self, scenario: str, shape: str, target: str, run: int, result: dict[str, Any]) -> dict[str, Any]:
        entry = {"scenario": scenario, "shape": shape, "target": target, "run": run, **result}
        self.measurements.append(entry)
        lat = result.get("latency_ms", {})
        self.log(
            f"{scenario}/{shape}/{target}#{run}: {result.get('rows_per_s', 0):,.0f} rows/s "
            f"{result.get('requests_per_s', 0):,.0f} req/s p50 {lat.get('p50', float('nan')):.1f} ms "
            f"p99 {lat.get('p99', float('nan')):.1f} ms non2xx {result.get('non_2xx', 0)} "
            f"errors {result.get('errors', 0)} cores target {result.get('target_cores', 0):.2f} "
            f"generator {result.get('generator_cores', 0):.2f}"
        )
        return entry

    def compare(
        self,
        scenario: str,
        shape: str,
        metric: str,
        reference: str,
        ours: list[float],
        theirs: list[float],
        note: str = "",
    ) -> None:
        ratios = [a / b for a, b in zip(ours, theirs, strict=False) if b]
        self.comparisons.append(
            {
                "scenario": scenario,
                "shape": shape,
                "metric": metric,
                "reference": reference,
                "birdhouse": ours,
                "reference_values": theirs,
                "ratios": ratios,
                "birdhouse_median": statistics.median(ours) if ours else None,
                "reference_median": statistics.median(theirs) if theirs else None,
                "ratio_median": statistics.median(ratios) if ratios else None,
                "note": note,
            }
        )

    def median_of(self, scenario: str, shape: str, target: str, key: str = "rows_per_s") -> float:
        values = [
            float(m[key])
            for m in self.measurements
            if m["scenario"] == scenario and m["shape"] == shape and m["target"] == target and key in m
        ]
        return statistics.median(values) if values else 0.0

    def wait_stored(self, name: str, expected: int, each: Callable[[], None] | None = None) -> tuple[int, float]:
        """Poll count() until it reaches ``expected`` (calling ``each`` per poll); returns (stored rows,
        seconds it took)."""
        t0 = time.perf_counter()
        deadline = t0 + self.config.drain_timeout_s
        stored = self.bh.count(name)
        progress_at, last = t0, stored
        while stored < expected and time.perf_counter() < deadline:
            time.sleep(0.1)
            if each is not None:
                each()
            stored = self.bh.count(name)
            now = time.perf_counter()
            if stored != last:
                progress_at, last = now, stored
            elif now - progress_at > self.config.stall_s:
                self.notes.append(
                    f"{name}: count() stuck at {stored:,} of {expected:,} acknowledged rows"
                    f" for {self.config.stall_s:g} s (rows still in the WAL, not flushed)"
                )
                break
        return stored, time.perf_counter() - t0

    def birdhouse_load(
        self,
        scenario: str,
        shape: str,
        run: int,
        bodies: list[bytes],
        rows: int,
        connections: int,
        extra: tuple[tuple[str, str], ...] = (),
        wait: bool = False,
        rate: float = 0.0,
        duration_s: float | None = None,
        target: str = "birdhouse",
    ) -> dict[str, Any]:
        name = self.ds_name(scenario)
        self.bh.create_datasource(name, events.BY_NAME[shape].schema)
        query = f"/v0/events?name={name}" + ("&wait=true" if wait else "")
        req = Request(query, (("Authorization", f"Bearer {self.bh.token}"), *extra))
        duration = self.config.duration_s if duration_s is None else duration_s
        profiler, prof_path = None, self.workdir / f"py-spy-{scenario}-{shape}-{target}.txt"
        if self.config.py_spy and run == 0:
            profiler = profile.start(self.bh.pid, prof_path, duration * 0.9)
        result = self.loads.run(self.bh, req, bodies, rows, duration, connections, rate)
        if profiler is not None:
            profiler.wait(timeout=60)
            result["profile"] = profile.summarize(prof_path)
            self.profiles[f"{scenario}/{shape}/{target}"] = result["profile"]
        stored, drain_s = self.wait_stored(name, result["rows"])
        result["stored_rows"] = stored
        result["drain_after_s"] = drain_s
        result["stored_rows_per_s"] = stored / (result["elapsed_s"] + drain_s)
        # wrk stops with requests in flight that the server still accepts: stored ≥ acknowledged is normal.
        if stored < result["rows"]:
            self.notes.append(f"{scenario}/{shape}#{run}: {result['rows']:,} rows acknowledged, {stored:,} stored")
        self.bh.drop_datasource(name)
        return self.record(scenario, shape, target, run, result)

    def clickhouse_load(
        self, scenario: str, shape: str, run: int, rows: int, encoding: str = "identity", target: str = "clickhouse"
    ) -> dict[str, Any] | None:
        if self.ch is None:
            return None
        table = f"t_{scenario}_{shape}_{run}"
        self.ch.create_table(table, events.BY_NAME[shape].columns_sql)
        sql = quote(f"INSERT INTO {table} FORMAT JSONEachRow")
        path = f"/?query={sql}&date_time_input_format=best_effort"
        headers = (("Content-Encoding", encoding),) if encoding != "identity" else ()
        bodies = self.bodies(shape, rows, encoding, payload_as_string=True)
        result = self.loads.run(
            self.ch, Request(path, headers), bodies, rows, self.config.duration_s, self.config.connections
        )
        result["stored_rows"] = self.ch.count(table)
        result["active_parts"] = self.ch.active_parts(table)
        self.ch.drop_table(table)
        return self.record(scenario, shape, target, run, result)

    def chdb_bulk(self, shape: str, run: int) -> dict[str, Any]:
        d = self.workdir / f"chdb-{shape}-{run}"
        d.mkdir(parents=True, exist_ok=True)
        body_files = []
        for i, body in enumerate(self.bodies(shape, self.config.batch_rows)):
            p = d / f"body-{i}.ndjson"
            p.write_bytes(body)
            body_files.append(str(p))
        spec = {
            "path": str(d / "db"),
            "columns_sql": events.BY_NAME[shape].columns_sql,
            "body_files": body_files,
            "rows_per_body": self.config.batch_rows,
            "batch_rows": self.config.chdb_batch_rows,
            "rows": 10**9,
            "max_s": min(self.config.chdb_max_s, self.config.duration_s),
        }
        (d / "spec.json").write_text(json.dumps(spec))
        subprocess.run(  # noqa: S603
            [sys.executable, "-m", "bench.chdb_ref", str(d / "spec.json"), str(d / "out.json")], check=True, timeout=600
        )
        result: dict[str, Any] = json.loads((d / "out.json").read_text())
        return self.record("batched", shape, "chdb", run, result)

    # scenarios ----------------------------------------------------------------------------------------

    def run_loadgen(self) -> None:
        """The generator's own ceiling: the trivial endpoint, small and batched bodies."""
        c = self.config
        for label, rows, conns in (("small", 1, c.small_connections), ("batched", c.batch_rows, c.connections)):
            bodies = self.bodies("flat", rows)
            result = self.loads.run(self.trivial, Request("/v0/events?name=x"), bodies, rows, c.duration_s, conns)
            self.record("loadgen", "flat", f"trivial-{label}", 0, result)
            if self.loads.use_wrk and label == "small":
                result = self.loads.run(
                    self.trivial, Request("/v0/events?name=x"), bodies, rows, c.duration_s, conns, force_python=True
                )
                self.record("loadgen", "flat", "trivial-small-python", 0, result)

    def run_batched(self) -> None:
        c = self.config
        for shape in c.shapes:
            ours, ch, bulk = [], [], []
            for run in range(c.repeat):
                m = self.birdhouse_load(
                    "batched", shape, run, self.bodies(shape, c.batch_rows), c.batch_rows, c.connections
                )
                ours.append(m["rows_per_s"])
                r = self.clickhouse_load("batched", shape, run, c.batch_rows)
                if r is not None:
                    ch.append(r["rows_per_s"])
                bulk.append(self.chdb_bulk(shape, run)["rows_per_s"])
            if ch:
                note = "payload sent as JSON text to ClickHouse 18.16" if shape == "web" else ""
                self.compare("batched", shape, "rows/s", "ClickHouse HTTP JSONEachRow", ours, ch, note)
            self.compare("batched", shape, "rows/s", "chDB bulk insert (100k-row inserts)", ours, bulk)

    def run_small(self) -> None:
        c = self.config
        for shape in c.shapes:
            ours: list[float] = []
            ref: list[float] = []
            floor: list[float] = []
            bodies = self.bodies(shape, 1)
            for run in range(c.repeat):
                ours.append(self.birdhouse_load("small", shape, run, bodies, 1, c.small_connections)["requests_per_s"])
                for target, path, values in (
                    ("trivial", "/v0/events?name=x", ref),
                    ("trivial+wal", f"{DURABLE_PREFIX}/v0/events?name=x", floor),
                ):
                    result = self.loads.run(self.trivial, Request(path), bodies, 1, c.duration_s, c.small_connections)
                    values.append(self.record("small", shape, target, run, result)["requests_per_s"])
            ratios = [f / t for f, t in zip(floor, ref, strict=False) if t]
            note = f"the durable floor is {statistics.median(ratios):.2f}× the trivial endpoint" if ratios else ""
            self.compare("small", shape, "requests/s", "trivial ASGI endpoint on granian", ours, ref, note)
            self.compare(
                "small", shape, "requests/s", "trivial endpoint + WAL append and fsync (durable floor)", ours, floor
            )

    def max_rows_per_s(self, shape: str) -> float:
        found = self.median_of("batched", shape, "birdhouse")
        if not found:
            self.run_batched_once(shape)
            found = self.median_of("batched", shape, "birdhouse")
        return found

    def run_batched_once(self, shape: str) -> None:
        c = self.config
        self.birdhouse_load("batched", shape, 0, self.bodies(shape, c.batch_rows), c.batch_rows, c.connections)

    def run_wait(self) -> None:
        c = self.config
        shape = c.shapes[0]
        max_rows = self.max_rows_per_s(shape)
        rate = max(1.0, 0.5 * max_rows / c.wait_rows)
        bodies = self.bodies(shape, c.wait_rows)
        closed, nowait, fixed, p99, own, own_p99 = [], [], [], [], [], []
        for run in range(c.repeat):
            # The "throughput ≥ 0.5 × wait=false": the same bodies and connections without wait.
            m = self.birdhouse_load(
                "wait", shape, run, bodies, c.wait_rows, c.wait_connections, wait=False, target="wait=false"
            )
            nowait.append(m["rows_per_s"])
            m = self.birdhouse_load(
                "wait", shape, run, bodies, c.wait_rows, c.wait_connections, wait=True, target="max"
            )
            closed.append(m["rows_per_s"])
            m = self.birdhouse_load(
                "wait", shape, run, bodies, c.wait_rows, c.wait_connections, wait=True, rate=rate, target="50%-batched"
            )
            fixed.append(m["rows_per_s"])
            p99.append(m["latency_ms"]["p99"])
            # The same at 50 % of wait=true's own closed-loop maximum: latency where wait=true is not overloaded.
            own_rate = max(1.0, 0.5 * closed[-1] / c.wait_rows)
            m = self.birdhouse_load(
                "wait", shape, run, bodies, c.wait_rows, c.wait_connections, wait=True, rate=own_rate, target="50%-own"
            )
            own.append(m["rows_per_s"])
            own_p99.append(m["latency_ms"]["p99"])
        self.compare(
            "wait",
            shape,
            "rows/s delivered at 50 % of its own max",
            "offered",
            own,
            [0.5 * x for x in closed],
            f"p99 {statistics.median(own_p99):.1f} ms (target ≤ 100 ms)",
        )
        self.compare(
            "wait", shape, "rows/s (closed loop)", f"wait=false, same {c.wait_rows}-row bodies", closed, nowait
        )
        self.compare("wait", shape, "rows/s (closed loop)", "batched wait=false max", closed, [max_rows] * len(closed))
        self.compare(
            "wait",
            shape,
            "rows/s delivered at 50 % offered",
            "offered 50 % of batched max",
            fixed,
            [rate * c.wait_rows] * len(fixed),
            f"p99 {statistics.median(p99):.1f} ms (target ≤ 100 ms)",
        )

    def run_compressed(self) -> None:
        c = self.config
        shape = c.shapes[0]
        for encoding in ("gzip", "zstd"):
            ours, ref = [], []
            bodies = self.bodies(shape, c.batch_rows, encoding)
            for run in range(c.repeat):
                m = self.birdhouse_load(
                    "compressed",
                    shape,
                    run,
                    bodies,
                    c.batch_rows,
                    c.connections,
                    (("Content-Encoding", encoding),),
                    target=f"birdhouse-{encoding}",
                )
                ours.append(m["rows_per_s"])
                # ClickHouse 18.16 reads gzip request bodies but not zstd: zstd is compared with its plain insert.
                ch_encoding = encoding if encoding == "gzip" else "identity"
                r = self.clickhouse_load(
                    "compressed", shape, run, c.batch_rows, ch_encoding, f"clickhouse-{ch_encoding}"
                )
                if r is not None:
                    ref.append(r["rows_per_s"])
            if ref:
                reference = "ClickHouse HTTP, gzip body" if encoding == "gzip" else "ClickHouse HTTP, plain body"
                self.compare("compressed", shape, f"rows/s ({encoding})", reference, ours, ref)

    def run_drain(self) -> None:
        """``drain_rows`` rows waiting in the WAL of a stopped server (bench/backlog.py writes them with the
        server's own acceptance code), then the time from starting it until ``count()`` has them all: what
        recovery after a backend outage or a crash under load costs, against the backend's bulk insert rate."""
        c = self.config
        shape = c.shapes[0]
        bulk = self.median_of("batched", shape, "chdb") or self.chdb_bulk(shape, 0)["rows_per_s"]
        name = self.ds_name("drain")
        self.bh.create_datasource(name, events.BY_NAME[shape].schema)
        # The same start with nothing to replay: what of the drain time is only starting a process.
        self.bh.terminate()
        t0 = time.perf_counter()
        self.bh.start()
        empty_start_s = time.perf_counter() - t0
        self.log(f"drain: writing {c.drain_rows:,} {shape} rows into the stopped server's WAL")
        filled = self.bh.fill_backlog(name, shape, c.drain_rows)
        backlog = int(filled["rows"])
        self.log(
            f"drain: {backlog:,} rows, {filled['wal_bytes'] / 2**20:,.0f} MiB of WAL written in "
            f"{filled['seconds']:.1f} s; starting birdhouse"
        )
        t0 = time.perf_counter()
        self.bh.start()
        ready_s = time.perf_counter() - t0
        rss_peak = [self.bh.rss_bytes()]
        stored, drain_s = self.wait_stored(name, backlog, lambda: rss_peak.append(self.bh.rss_bytes()))
        total_s = ready_s + drain_s
        rate = stored / total_s if total_s > 0 else 0.0
        result: dict[str, Any] = {
            "generator": "bench.backlog (before start)",
            "rows": backlog,
            "backlog_rows": backlog,
            "backlog_wal_bytes": filled["wal_bytes"],
            "fill_s": filled["seconds"],
            "ready_s": ready_s,
            "empty_start_s": empty_start_s,
            "rows_per_s_after_start": stored / max(total_s - empty_start_s, 1e-9),
            "drain_s": total_s,
            "stored_rows": stored,
            "drain_rows_per_s": rate,
            "rows_per_s": rate,
            "rss_peak_bytes": max(rss_peak),
            "target_cores": self.bh.cpu_seconds() / total_s if total_s > 0 else 0.0,  # a new process: all of it
        }
        self.bh.drop_datasource(name)
        self.record("drain", shape, "birdhouse", 0, result)
        self.compare(
            "drain",
            shape,
            "rows/s from a WAL backlog into the table (start included)",
            "chDB bulk insert rate",
            [rate],
            [bulk],
            f"{backlog:,} rows ({filled['wal_bytes'] / 2**20:,.0f} MiB of WAL) waiting at start; all in the table "
            f"{total_s:.1f} s after the start (/v0/health, which waits for the replay, ready at {ready_s:.1f} s; "
            f"the same start with an empty WAL takes {empty_start_s:.1f} s, so "
            f"{result['rows_per_s_after_start']:,.0f} rows/s once started); stored {stored:,}; "
            f"RSS peak {max(rss_peak) / 2**20:,.0f} MiB",
        )

    def run_soak(self) -> None:
        c = self.config
        shape = c.shapes[0]
        max_rows = self.max_rows_per_s(shape)
        rate = max(1.0, c.soak_fraction * max_rows / c.batch_rows)
        name = self.ds_name("soak")
        self.bh.create_datasource(name, events.BY_NAME[shape].schema)
        req = Request(f"/v0/events?name={name}", (("Authorization", f"Bearer {self.bh.token}"),))
        duration = c.soak_min * 60
        _, spec_path = self.loads.spec(
            self.bh, req, self.bodies(shape, c.batch_rows), c.batch_rows, duration, c.connections, rate, c.sample_s
        )
        samples: list[dict[str, float]] = []
        stop = threading.Event()

        def sample() -> None:
            t0 = time.perf_counter()
            while not stop.wait(c.sample_s):
                samples.append(
                    {
                        "t_s": time.perf_counter() - t0,
                        "rss_bytes": self.bh.rss_bytes(),
                        "wal_bytes": self.bh.wal_bytes(),
                    }
                )

        rows_per_s = rate * c.batch_rows
        share = f"{c.soak_fraction:.0%} of max"
        self.log(f"soak: {c.soak_min:g} min at {rate:.1f} req/s ({rows_per_s:,.0f} rows/s, {share})")
        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        proc, out = self.loads.start_python(spec_path)
        proc.wait(timeout=duration + 120)
        stop.set()
        thread.join()
        result = json.loads(out.read_text())
        stored, drain_s = self.wait_stored(name, result["rows"])
        result.update({"stored_rows": stored, "drain_after_s": drain_s, "samples": samples, "offered_rate_rps": rate})
        self.bh.drop_datasource(name)
        self.soak = self.record("soak", shape, "birdhouse", 0, result)

    def run(self) -> None:
        order = [s for s in ALL_SCENARIOS if s in self.config.scenarios]
        for scenario in order:
            self.log(f"scenario {scenario}")
            getattr(self, f"run_{scenario}")()
        if self.config.soak_min > 0:
            self.log("scenario soak")
            self.run_soak()
