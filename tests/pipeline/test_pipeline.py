"""WAL → flusher → backend, in process over real chDB (SPEC §8)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from birdhouse.backends import Backend
from birdhouse.pipeline.deliver import deliver_segment
from birdhouse.pipeline.records import AcceptedBatch, encode_batch
from tests.http.conftest import Local
from tests.pipeline.conftest import FlakyBackend

SCHEMA = "id String `json:$.id`, n Int64 `json:$.n`"
SLOW = {"flush.interval_ms": 600_000}


def body(*ids: str) -> bytes:
    return "\n".join(json.dumps({"id": i, "n": 1}) for i in ids).encode()


def count(local: Local, table: str = "events") -> int:
    ws = local.runtime.default_workspace()
    assert ws is not None
    out = local.runtime.backend.query(f"SELECT count() FROM `{ws.database}`.`{table}`", "TSVRaw").body
    return int(out)


def post(local: Local, data: bytes, params: str = "", **headers: str) -> Any:
    return local.client.post(f"/v0/events?name=events{params}", content=data, headers={**local.auth(), **headers})


def flaky(local: Local) -> FlakyBackend:
    wrapper = FlakyBackend(local.runtime.backend)
    local.runtime.flusher.backend = wrapper
    return wrapper


def test_202_means_in_the_wal_not_yet_in_the_table(make_local: Callable[..., Local]) -> None:
    local = make_local(**SLOW)
    local.create_datasource("events", SCHEMA)
    response = post(local, body("a", "b"))
    assert response.status_code == 202
    assert count(local) == 0
    assert local.runtime.wal.total_bytes > 0
    assert local.runtime.wal.stats().records == 1
    local.drain()
    assert count(local) == 2


def test_wait_true_does_not_wait_for_the_flush_interval(make_local: Callable[..., Local]) -> None:
    local = make_local(**SLOW)
    local.create_datasource("events", SCHEMA)
    response = post(local, body("a"), "&wait=true")
    # With a 10-minute flush interval, a 200 (not the 202 fallback after
    # events.wait_timeout_ms) proves the request triggered its own flush.
    assert response.status_code == 200
    assert count(local) == 1


def test_backend_down_wait_falls_back_to_202_then_drains_once(make_local: Callable[..., Local]) -> None:
    local = make_local(**{"events.wait_timeout_ms": 300, "flush.retry_initial_ms": 20, "flush.retry_max_ms": 50})
    local.create_datasource("events", SCHEMA)
    backend = flaky(local)
    backend.down = True
    response = post(local, body("a", "b", "c"), "&wait=true")
    assert response.status_code == 202, "never a false 200 while the backend is down"
    assert response.json() == {"successful_rows": 3, "quarantined_rows": 0}
    assert post(local, body("d")).status_code == 202
    assert count(local) == 0
    assert backend.failed_inserts >= 1
    backend.down = False
    local.drain()
    assert count(local) == 4
    local.drain()
    assert count(local) == 4


def test_backend_down_past_deadline_gives_503(make_local: Callable[..., Local]) -> None:
    local = make_local(
        **{
            "flush.backend_down_deadline_s": 0.05,
            "events.wait_timeout_ms": 200,
            "flush.retry_initial_ms": 10,
            "flush.retry_max_ms": 20,
        }
    )
    local.create_datasource("events", SCHEMA)
    backend = flaky(local)
    backend.down = True
    assert post(local, body("a"), "&wait=true").status_code == 202
    time.sleep(0.2)
    refused = post(local, body("b"))
    assert refused.status_code == 503
    assert refused.text == "Service temporarily unavailable, no data ingested, please retry again\n"
    assert refused.headers["retry-after"] == "1"
    backend.down = False
    local.drain()
    assert post(local, body("c"), "&wait=true").status_code == 200
    assert count(local) == 2  # "b" was refused and never stored


def test_wal_budget_exhausted_gives_503_and_recovers(make_local: Callable[..., Local]) -> None:
    local = make_local(**{"wal.max_bytes": 40_000, "wal.segment_max_bytes": 8_000, **SLOW})
    local.create_datasource("events", SCHEMA)
    backend = flaky(local)
    backend.down = True
    statuses = [post(local, body(*[f"{i}-{j}" for j in range(50)])).status_code for i in range(40)]
    assert 202 in statuses and 503 in statuses
    accepted = statuses.count(202) * 50
    assert statuses[statuses.index(503) :].count(202) == 0, "once full, nothing more is accepted"
    backend.down = False
    local.drain()
    assert count(local) == accepted
    assert post(local, body("after"), "&wait=true").status_code == 200


def test_restart_replays_the_wal_before_ready(make_local: Callable[..., Local], tmp_path: Path) -> None:
    first = make_local(tmp_path / "d", **{**SLOW, "server.shutdown_grace_s": 0.5, "flush.retry_initial_ms": 10})
    first.create_datasource("events", SCHEMA)
    backend = flaky(first)
    backend.down = True
    assert post(first, body("x", "y")).status_code == 202
    # Restart: the first app stops while the backend is "down", so the rows
    # are still only in the WAL; the second must deliver them.
    second = make_local(tmp_path / "d", **SLOW)
    health = second.client.get("/v0/health")
    deadline = time.monotonic() + 30
    while health.status_code != 200 and time.monotonic() < deadline:
        # Not ready while replaying (SPEC: recovery before readiness).
        assert health.json() == {"status": "replaying", "error": "delivering the write-ahead log"}
        time.sleep(0.02)
        health = second.client.get("/v0/health")
    assert health.json() == {"status": "ok"}
    # Ready means replayed: no drain needed to see the rows.
    ws = second.runtime.default_workspace()
    assert ws is not None
    assert second.runtime.backend.query(f"SELECT count() FROM `{ws.database}`.events", "TSVRaw").body == b"2\n"
    assert second.runtime.wal.sealed() == []


def test_replaying_a_delivered_segment_inserts_nothing_twice(local: Local) -> None:
    local.create_datasource("events", SCHEMA)
    ws = local.runtime.default_workspace()
    ds = local.runtime.catalog.find_datasource(ws.id if ws else "", "events")
    assert ws is not None and ds is not None
    batches = [
        AcceptedBatch(
            f"req{i}",
            ws.id,
            ds.id,
            ("id", "n"),
            body(f"{i}a", f"{i}b") + b"\n",
            b'{"id":"bad","n":null,"c__error_column":["n"],"c__error":["x"],"c__import_id":null}\n',
            2,
            1,
        )
        for i in range(3)
    ]
    payloads = [encode_batch(b) for b in batches]
    backend: Backend = local.runtime.backend
    for _ in range(3):  # a crash after the inserts but before the segment was deleted, twice
        deliver_segment(backend, local.runtime.catalog, payloads, Path("/nonexistent"))
    assert count(local) == 6
    assert count(local, "events_quarantine") == 3


def test_idempotency_key(make_local: Callable[..., Local], tmp_path: Path) -> None:
    local = make_local(tmp_path / "d")
    local.create_datasource("events", SCHEMA)
    local.create_datasource("other", SCHEMA)
    first = post(local, body("a", "b"), "&wait=true", **{"Idempotency-Key": "k1"})
    assert first.status_code == 200 and "x-birdhouse-deduplicated" not in first.headers
    again = post(local, body("a", "b", "c"), "&wait=true", **{"Idempotency-Key": "k1"})
    assert again.status_code == 200
    assert again.headers["x-birdhouse-deduplicated"] == "true"
    assert again.json() == {"successful_rows": 2, "quarantined_rows": 0}  # the original counts
    assert post(local, body("z"), **{"Idempotency-Key": "k1"}).status_code == 202
    # The same key on another data source is another request.
    other = local.client.post(
        "/v0/events?name=other&wait=true", content=body("a"), headers={**local.auth(), "Idempotency-Key": "k1"}
    )
    assert "x-birdhouse-deduplicated" not in other.headers
    assert count(local) == 2
    # Survives a restart (the key was persisted at delivery).
    restarted = make_local(tmp_path / "d")
    replay = post(restarted, body("a", "b"), **{"Idempotency-Key": "k1"})
    assert replay.headers["x-birdhouse-deduplicated"] == "true"
    assert count(restarted) == 2


def test_idempotency_key_survives_restart_before_delivery(make_local: Callable[..., Local], tmp_path: Path) -> None:
    first = make_local(tmp_path / "d", **{**SLOW, "server.shutdown_grace_s": 0.5})
    first.create_datasource("events", SCHEMA)
    backend = flaky(first)
    backend.down = True
    assert post(first, body("a"), **{"Idempotency-Key": "k2"}).status_code == 202
    second = make_local(tmp_path / "d", **SLOW)
    retried = post(second, body("a"), **{"Idempotency-Key": "k2"})
    assert retried.headers["x-birdhouse-deduplicated"] == "true"
    second.drain()
    assert count(second) == 1


def test_body_hash_dedup_is_opt_in(make_local: Callable[..., Local], tmp_path: Path) -> None:
    local = make_local()
    local.create_datasource("events", SCHEMA)
    assert post(local, body("same"), "&wait=true").status_code == 200
    assert post(local, body("same"), "&wait=true").status_code == 200
    assert count(local) == 2, "identical batches are legitimate without opt-in"
    hashed = make_local(tmp_path / "hashed", **{"dedup.body_hash": True})
    hashed.create_datasource("events", SCHEMA)
    assert "x-birdhouse-deduplicated" not in post(hashed, body("same"), "&wait=true").headers
    assert post(hashed, body("same"), "&wait=true").headers["x-birdhouse-deduplicated"] == "true"
    assert count(hashed) == 1


def test_wal_write_error_gives_503_and_stores_nothing(local: Local, monkeypatch: Any) -> None:
    from birdhouse.wal import WalError

    local.create_datasource("events", SCHEMA)

    def broken(payload: bytes) -> Any:
        raise WalError("injected: disk full")

    monkeypatch.setattr(local.runtime.wal, "append", broken)
    response = post(local, body("a"))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    monkeypatch.undo()
    local.drain()
    assert count(local) == 0


def test_quarantine_rows_visible_right_after_a_202(make_local: Callable[..., Local]) -> None:
    local = make_local(**SLOW)
    local.create_datasource("events", SCHEMA)
    response = post(local, b'{"id": "ok", "n": 1}\nnot json\n')
    assert response.json() == {"successful_rows": 1, "quarantined_rows": 1}
    # Before any flush: the tb CLI reads <ds>_quarantine at once (SPEC §8.2).
    assert count(local, "events_quarantine") == 1
    assert count(local) == 0
    local.drain()
    assert count(local, "events_quarantine") == 1 and count(local) == 1


def test_disk_failure_refuses_then_recovers_without_operator(
    make_local: Callable[..., Local], monkeypatch: Any
) -> None:
    import errno
    import os

    local = make_local(**{"flush.retry_initial_ms": 20, "flush.retry_max_ms": 50})
    local.create_datasource("events", SCHEMA)
    assert post(local, body("before"), "&wait=true").status_code == 200
    real = os.fdatasync

    def enospc(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdatasync", enospc)
    failed = post(local, body("lost"))
    assert failed.status_code == 503, "a write whose fsync failed is never acknowledged"
    assert post(local, body("refused")).status_code == 503
    monkeypatch.setattr(os, "fdatasync", real)
    # The flusher probes the disk and the WAL takes writes again by itself.
    deadline = time.monotonic() + 20
    status = 503
    while status == 503 and time.monotonic() < deadline:
        time.sleep(0.05)
        status = post(local, body("after"), "&wait=true").status_code
    assert status == 200
    local.drain()
    ws = local.runtime.default_workspace()
    assert ws is not None
    stored = local.runtime.backend.query(f"SELECT DISTINCT id FROM `{ws.database}`.events ORDER BY id", "TSVRaw")
    assert stored.body.decode().split() == ["after", "before"]


def test_rows_flush_by_age_without_any_wait_request(make_local: Callable[..., Local]) -> None:
    """wait=false only: the flush interval alone must deliver the rows."""
    local = make_local(**{"flush.interval_ms": 100})
    local.create_datasource("events", SCHEMA)
    for i in range(3):
        assert post(local, body(f"a{i}")).status_code == 202
    deadline = time.monotonic() + 10
    while count(local) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert count(local) == 3
    assert post(local, body("later")).status_code == 202
    deadline = time.monotonic() + 10
    while count(local) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert count(local) == 4


def test_a_lone_waiter_is_not_held_for_the_coalescing_window(make_local: Callable[..., Local]) -> None:
    # A 60 s coalescing window and a 30 s wait timeout: a 200 proves the flush did
    # not sit out the window (no earlier waiters, so nobody else is expected).
    local = make_local(**SLOW, **{"flush.wait_coalesce_ms": 60_000, "events.wait_timeout_ms": 30_000})
    local.create_datasource("events", SCHEMA)
    assert post(local, body("a"), "&wait=true").status_code == 200
    assert post(local, body("b"), "&wait=true").status_code == 200
    assert count(local) == 2


def test_concurrent_waiters_share_flushes(make_local: Callable[..., Local]) -> None:
    local = make_local(**SLOW)
    local.create_datasource("events", SCHEMA)
    before = local.runtime.flusher.flushes
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda i: post(local, body(f"r{i}"), "&wait=true").status_code, range(48)))
    assert statuses == [200] * 48
    assert count(local) == 48
    assert local.runtime.flusher.flushes - before < 48


def test_wait_true_answers_once_the_backend_acknowledged_not_after_the_wal_delete(
    make_local: Callable[..., Local], monkeypatch: Any
) -> None:
    import threading

    local = make_local(**SLOW)
    local.create_datasource("events", SCHEMA)
    wal = local.runtime.wal
    deleting, release = threading.Event(), threading.Event()
    real_delete = wal.delete

    def held_delete(seq: int) -> None:
        deleting.set()
        assert release.wait(30)
        real_delete(seq)

    monkeypatch.setattr(wal, "delete", held_delete)
    try:
        response = post(local, body("a", "b"), "&wait=true")
        # Answered while the delivered segment is still on disk: a 200 means "in the backend", and the
        # WAL file goes only after that (its replay would be deduplicated anyway).
        assert response.status_code == 200, response.text
        assert deleting.is_set()
        assert count(local) == 2
        assert wal.sealed(), "the segment is deleted only after the answer here"
        assert local.runtime.flusher.flushed_through < local.runtime.flusher.delivered_through
    finally:
        release.set()
    local.drain()
    assert not wal.sealed()
    assert local.runtime.flusher.flushed_through == local.runtime.flusher.delivered_through
    assert count(local) == 2


def test_each_flush_leaves_the_next_wal_segment_made_ahead(make_local: Callable[..., Local]) -> None:
    from birdhouse.wal.segment import SPARE_NAME, encode_header, list_segments

    local = make_local(**SLOW)
    local.create_datasource("events", SCHEMA)
    wal_dir = local.runtime.settings.data_path / "wal"
    for _ in range(3):
        response = post(local, body("a"), "&wait=true")
        assert response.status_code == 200, response.text
        local.drain()  # the flush that answered has returned
        # The seal started a segment renamed from the spare; the flush then made the following one.
        active = max(list_segments(wal_dir))
        assert (wal_dir / SPARE_NAME).read_bytes() == encode_header(active + 1)
    assert count(local) == 3
