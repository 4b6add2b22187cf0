"""The embedded engine's merge threads run at a higher nice value than the request path (backends/chdb_threads.py)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from birdhouse.backends.chdb import ChdbBackend
from birdhouse.backends.chdb_threads import BACKGROUND_PREFIXES, MergeNice

TASKS = Path("/proc/self/task")
pytestmark = pytest.mark.skipif(not TASKS.exists(), reason="per-thread nice is read from /proc (Linux)")


def _threads() -> dict[int, str]:
    return {int(t.name): (t / "comm").read_text().strip() for t in TASKS.iterdir()}


def test_merge_threads_are_reniced_and_the_rest_are_not(tmp_path: Path) -> None:
    backend = ChdbBackend(tmp_path / "chdb")
    try:
        # The engine sets some of its own (its memory worker runs at -20): those must stay as they are.
        before = {tid: os.getpriority(os.PRIO_PROCESS, tid) for tid, name in _threads().items()}
        backend.merges = MergeNice(10)
        backend.command("CREATE TABLE t (a UInt64) ENGINE = MergeTree ORDER BY a")
        for i in range(3):
            backend.insert("t", b'{"a":%d}\n' % i)
        threads = _threads()
        merging = [tid for tid, name in threads.items() if name.startswith(BACKGROUND_PREFIXES)]
        assert merging, f"no merge threads among {sorted(set(threads.values()))}"
        assert {os.getpriority(os.PRIO_PROCESS, tid) for tid in merging} == {10}
        me = threading.get_native_id()
        assert os.getpriority(os.PRIO_PROCESS, me) == 0  # the calling (request-path) thread keeps its priority
        others = [tid for tid, name in threads.items() if not name.startswith(BACKGROUND_PREFIXES) and tid in before]
        assert others
        assert {tid: os.getpriority(os.PRIO_PROCESS, tid) for tid in others} == {tid: before[tid] for tid in others}
    finally:
        backend.close()


def test_zero_leaves_every_thread_alone(tmp_path: Path) -> None:
    fake = tmp_path / "task"
    (fake / "123").mkdir(parents=True)
    (fake / "123" / "comm").write_text("MergeMutate\n")
    assert MergeNice(0, fake).apply() == 0


def test_threads_of_other_names_are_left_alone_and_rescans_are_spaced(tmp_path: Path) -> None:
    fake = tmp_path / "task"  # names only: no thread here is a merge thread, so nothing is reniced
    (fake / "1").mkdir(parents=True)
    (fake / "1" / "comm").write_text("QueryPipelineEx\n")
    nice = MergeNice(10, fake)
    assert nice.apply() == 0
    assert nice._next > 0
    before = nice._next
    assert nice.apply() == 0
    assert nice._next == before  # within RESCAN_S the directory is not read again
