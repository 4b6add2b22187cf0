"""The embedded engine's insert journal (backends/chdb_journal.py).

A kill -9 between the engine writing a token's deduplication record and
renaming the new part into place leaves a record without data; replaying the
token is then silently dropped. These tests build that state for real (an
insert that committed, then its part removed the way the engine's start-up
removes an unfinished one), show the engine alone loses the replay, and show
the backend does not. Each step runs in its own process: chDB allows one data
path per process and the test process already has one.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from birdhouse.backends import Backend, BackendUnavailable
from birdhouse.backends.chdb import ChdbBackend
from birdhouse.backends.chdb_journal import max_block

TABLE = "`j`.`t`"
SETUP = f"""
import json, os, sys
from birdhouse.backends.chdb import ChdbBackend
path = sys.argv[1]
def rows(token, n=5):
    return "\\n".join(json.dumps({{"k": f"{{token}}-{{i}}", "tok": token}}) for i in range(n)).encode()
def count(backend, token):
    return int(backend.query(f"SELECT count() FROM {TABLE} WHERE tok = '{{token}}'", "TSVRaw").body)
def insert(backend, token, data=None):
    settings = {{"insert_deduplicate": 1, "insert_deduplication_token": token}}
    return backend.insert("{TABLE}", data or rows(token), settings=settings)
"""


def _run(path: Path, code: str) -> dict[str, object]:
    """Run ``code`` (after SETUP) in a fresh process; it prints one JSON object."""
    script = SETUP + textwrap.dedent(code)
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _crash_mid_insert(path: Path) -> str:
    """T1 lands normally; T2 is left 'in flight' (intent open) after it
    committed. Returns the table's data directory."""
    out = _run(
        path,
        f"""
        b = ChdbBackend(path)
        b.command("CREATE DATABASE IF NOT EXISTS j")
        b.command("CREATE TABLE {TABLE} (k String, tok String) ENGINE = MergeTree ORDER BY k "
                  "SETTINGS non_replicated_deduplication_window = 100")
        insert(b, "T1")
        _, table_dir = b._table("{TABLE}")
        b._journal.begin("T2", table_dir)
        with b._session.send_insert("INSERT INTO {TABLE} SETTINGS insert_deduplicate=1, "
                                    "insert_deduplication_token='T2'", "JSONEachRow") as ins:
            ins.append(rows("T2"))
            ins.finish()
        print(json.dumps({{"dir": table_dir, "t2": count(b, "T2")}}), flush=True)
        os._exit(0)  # no close: the intent stays open, as after a kill -9
        """,
    )
    assert out["t2"] == 5
    return str(out["dir"])


def _drop_newest_part(table_dir: str) -> None:
    """What start-up does to a part that was never renamed into place."""
    newest = max((p for p in os.listdir(table_dir) if len(p.split("_")) == 4), key=lambda p: int(p.split("_")[2]))
    for root, dirs, files in os.walk(Path(table_dir) / newest, topdown=False):
        for name in files:
            os.unlink(os.path.join(root, name))
        for name in dirs:
            os.rmdir(os.path.join(root, name))
    os.rmdir(Path(table_dir) / newest)


def test_replay_after_a_dangling_dedup_record_lands_once(tmp_path: Path) -> None:
    path = tmp_path / "chdb"
    table_dir = _crash_mid_insert(path)
    _drop_newest_part(table_dir)
    # The engine alone: the record without its part swallows the replay.
    control = _run(
        path,
        f"""
        import chdb.session
        s = chdb.session.Session(path)
        s.query("INSERT INTO {TABLE} SETTINGS insert_deduplicate=1, insert_deduplication_token='T2' "
                "FORMAT JSONEachRow\\n" + rows("T2").decode())
        print(json.dumps({{"t2": int(s.query("SELECT count() FROM {TABLE} WHERE tok = 'T2'", "TSVRaw").bytes())}}))
        """,
    )
    assert control["t2"] == 0, "the hazard the journal exists for must be real"
    # Through the backend: the open intent is resolved as not committed.
    out = _run(
        path,
        """
        b = ChdbBackend(path)
        insert(b, "T2")
        insert(b, "T2")  # deduplicated under its alias
        insert(b, "T1")  # committed before the crash: deduplicated
        print(json.dumps({"t2": count(b, "T2"), "t1": count(b, "T1")}))
        b.close()
        """,
    )
    assert out == {"t2": 5, "t1": 5}


def test_replay_of_a_committed_insert_is_still_deduplicated(tmp_path: Path) -> None:
    path = tmp_path / "chdb"
    _crash_mid_insert(path)
    out = _run(
        path,
        """
        b = ChdbBackend(path)
        insert(b, "T2")
        print(json.dumps({"t2": count(b, "T2")}))
        b.close()
        """,
    )
    assert out == {"t2": 5}


def test_max_block_reads_committed_part_names_only(tmp_path: Path) -> None:
    for name in ["all_1_1_0", "all_2_5_1", "202611_7_7_0_9", "tmp_insert_all_9_9_0", "delete_tmp_all_8_8_0"]:
        (tmp_path / name).mkdir()
    for name in ["format_version.txt", "mutation_3.txt"]:
        (tmp_path / name).write_text("x")
    (tmp_path / "deduplication_logs").mkdir()
    (tmp_path / "detached").mkdir()
    assert max_block(str(tmp_path)) == 7
    assert max_block(str(tmp_path / "missing")) == 0


CHILD = f"""
import sys
from birdhouse.backends.chdb import ChdbBackend
b = ChdbBackend(sys.argv[1])
b.command("CREATE DATABASE IF NOT EXISTS j")
b.command("CREATE TABLE IF NOT EXISTS {TABLE} (k String, tok String) ENGINE = MergeTree ORDER BY k "
          "SETTINGS non_replicated_deduplication_window = 1000")
i = int(sys.argv[2])
while True:
    data = "\\n".join('{{"k": "%d-%d", "tok": "T%d"}}' % (i, j, i) for j in range(20)).encode()
    b.insert("{TABLE}", data, settings={{"insert_deduplicate": 1, "insert_deduplication_token": f"T{{i}}"}})
    print(i, flush=True)
    i += 1
"""


def test_kill9_during_token_inserts_then_replay_is_exactly_once(tmp_path: Path) -> None:
    """Random kills of a process inserting in a loop; each restart replays the
    insert that was in flight and the last acknowledged one, as the flusher
    would replay a segment. Every token ends up stored exactly once."""
    path = tmp_path / "chdb"
    rng = random.Random(7)
    next_token = 0
    for _ in range(8):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(next_token)], stdout=subprocess.PIPE, text=True
        )
        time.sleep(rng.uniform(1.2, 2.0))
        os.kill(child.pid, signal.SIGKILL)
        assert child.stdout is not None
        acked = [int(x) for x in child.stdout.read().split()]
        child.wait()
        child.stdout.close()
        in_flight = (acked[-1] if acked else next_token - 1) + 1
        out = _run(
            path,
            f"""
            b = ChdbBackend(path)
            for i in ({in_flight - 1}, {in_flight}):
                if i >= 0:
                    data = "\\n".join('{{"k": "%d-%d", "tok": "T%d"}}' % (i, j, i) for j in range(20)).encode()
                    insert(b, f"T{{i}}", data)
            body = b.query("SELECT tok, toUInt32(count()) FROM {TABLE} GROUP BY tok", "JSONCompactEachRow").body
            print(json.dumps({{"counts": dict(json.loads(line) for line in body.splitlines())}}))
            b.close()
            """,
        )
        counts = out["counts"]
        assert isinstance(counts, dict)
        expected = {f"T{i}": 20 for i in range(in_flight + 1)}
        assert counts == expected, {k: v for k, v in counts.items() if v != 20} or set(expected) - set(counts)
        next_token = in_flight + 1


def test_a_failing_journal_write_is_a_transient_backend_failure(backend: Backend) -> None:
    """If the intent cannot be written the insert does not run: the flusher
    sees BackendUnavailable (retry later), never an insert a crash could not resolve."""
    assert isinstance(backend, ChdbBackend)
    backend.command("CREATE DATABASE IF NOT EXISTS j")
    backend.command(f"CREATE TABLE {TABLE} (k String, tok String) ENGINE = MergeTree ORDER BY k")
    journal_fd = backend._journal._fd
    read_only = os.open(os.devnull, os.O_RDONLY)
    backend._journal._fd = read_only  # every pwrite now fails (EBADF)
    try:
        with pytest.raises(BackendUnavailable, match="insert journal"):
            backend.insert(TABLE, b'{"k": "a", "tok": "T"}', settings={"insert_deduplication_token": "T"})
        assert backend.query(f"SELECT count() FROM {TABLE}", "TSVRaw").body.strip() == b"0"
        # Inserts without a token are not journaled and still work.
        backend.insert(TABLE, b'{"k": "b", "tok": ""}')
        assert backend.query(f"SELECT count() FROM {TABLE}", "TSVRaw").body.strip() == b"1"
    finally:
        backend._journal._fd = journal_fd
        os.close(read_only)
