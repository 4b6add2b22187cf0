"""Optional py-spy sampling of the server while a load runs (``--py-spy``), summarized as the top frames.

py-spy's ``raw`` output is collapsed stacks (``frame;frame;… count``). Self time is the leaf frame; total
time counts each distinct frame once per stack. Frames are ``function (file:line)``; the line is dropped so
one function aggregates.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_LINE = re.compile(r":\d+\)$")
# Leaves where a thread sleeps (py-spy's idle detection misses some of them with --nonblocking): counted as
# idle, so the shares below are of the time the server was doing something.
_IDLE = ("Condition.wait ", "Queue.get ", "EpollSelector.select ", "Event.wait ", "WorkerThread.run ")


def _exe() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"  # installed into the venv, which may not be on PATH
    return str(beside) if beside.exists() else shutil.which("py-spy")


def available() -> bool:
    return _exe() is not None


def start(pid: int, out: Path, duration_s: float) -> subprocess.Popen[bytes] | None:
    exe = _exe()
    if exe is None:
        return None
    cmd = [exe, "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--format", "raw"]
    cmd += ["--rate", "200", "--duration", str(max(1, int(duration_s))), "--output", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603


def _frame(frame: str) -> str:
    return _LINE.sub(")", frame.strip())


def summarize(path: Path, top: int = 20) -> dict[str, Any]:
    self_time: Counter[str] = Counter()
    total_time: Counter[str] = Counter()
    samples = idle = 0
    if not path.exists():
        return {"samples": 0, "idle_samples": 0, "self": [], "total": []}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if f]
        # py-spy prefixes process and thread pseudo-frames; keep real frames (they carry a file).
        frames = [f for f in frames if "(" in f]
        if not frames:
            continue
        if frames[-1].startswith(_IDLE):
            idle += count
            continue
        samples += count
        self_time[frames[-1]] += count
        for f in set(frames):
            total_time[f] += count

    def share(counter: Counter[str]) -> list[list[Any]]:
        return [[f, round(100 * n / samples, 1)] for f, n in counter.most_common(top)] if samples else []

    return {"samples": samples, "idle_samples": idle, "self": share(self_time), "total": share(total_time)}
