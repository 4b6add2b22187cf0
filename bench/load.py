"""One load run: build raw requests, drive them with wrk (closed loop) or bench.loadgen, and account the
CPU the target and the generator used, so a result says which side was saturated."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psutil

from bench import wrk


class Target(Protocol):
    port: int

    def cpu_seconds(self) -> float: ...


@dataclass(frozen=True)
class Request:
    path: str
    headers: tuple[tuple[str, str], ...] = ()


def raw_request(port: int, req: Request, body: bytes) -> bytes:
    head = [f"POST {req.path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in req.headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _machine_busy() -> float:
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


class LoadRunner:
    def __init__(self, workdir: Path, use_wrk: bool) -> None:
        self.workdir = workdir
        self.use_wrk = use_wrk
        self._n = 0

    def _write_requests(self, port: int, req: Request, bodies: list[bytes]) -> list[Path]:
        self._n += 1
        d = self.workdir / f"load-{self._n:03d}"
        d.mkdir(parents=True, exist_ok=True)
        files = []
        for i, body in enumerate(bodies):
            path = d / f"req-{i:04d}.http"
            path.write_bytes(raw_request(port, req, body))
            files.append(path)
        return files

    def spec(
        self,
        target: Target,
        req: Request,
        bodies: list[bytes],
        rows_per_request: int,
        duration_s: float,
        connections: int,
        rate: float = 0.0,
        window_s: float = 5.0,
    ) -> tuple[dict[str, Any], Path]:
        files = self._write_requests(target.port, req, bodies)
        spec = {
            "host": "127.0.0.1",
            "port": target.port,
            "request_files": [str(p) for p in files],
            "rows_per_request": rows_per_request,
            "duration_s": duration_s,
            "connections": connections,
            "rate": rate,
            "window_s": window_s,
        }
        spec_path = files[0].parent / "spec.json"
        spec_path.write_text(json.dumps(spec))
        return spec, spec_path

    def start_python(self, spec_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
        out = spec_path.parent / "result.json"
        proc = subprocess.Popen([sys.executable, "-m", "bench.loadgen", str(spec_path), str(out)])  # noqa: S603
        return proc, out

    def run(
        self,
        target: Target,
        req: Request,
        bodies: list[bytes],
        rows_per_request: int,
        duration_s: float,
        connections: int,
        rate: float = 0.0,
        force_python: bool = False,
    ) -> dict[str, Any]:
        spec, spec_path = self.spec(target, req, bodies, rows_per_request, duration_s, connections, rate)
        cpu_target0, cpu_gen0, t0 = target.cpu_seconds(), _children_cpu(), time.perf_counter()
        busy0 = _machine_busy()
        if self.use_wrk and rate == 0 and not force_python:
            files = [Path(p) for p in spec["request_files"]]
            url = f"http://127.0.0.1:{target.port}{req.path}"
            result = wrk.run(url, files, connections, duration_s, rows_per_request, spec_path.parent)
            result["generator"] = "wrk"
        else:
            proc, out = self.start_python(spec_path)
            proc.wait(timeout=duration_s + 120)
            result = json.loads(out.read_text())
            result["generator"] = "bench.loadgen"
        wall = time.perf_counter() - t0
        result["target_cores"] = (target.cpu_seconds() - cpu_target0) / wall
        result["generator_cores"] = (_children_cpu() - cpu_gen0) / wall
        # Everything busy on the machine: minus target and generator, what neighbours took from this run.
        result["machine_cores"] = (_machine_busy() - busy0) / wall
        result["connections"] = connections
        result["offered_rate_rps"] = rate
        result["request_bytes"] = sum(len(b) for b in bodies) // max(1, len(bodies))
        return result
