"""Large bodies converted in worker processes (birdhouse/pipeline/offload.py, birdhouse/schema/worker.py).

Real worker processes throughout. What must hold: the outcome is exactly the in-process conversion's, each
reply reaches the request it answers, and a worker that is not ready, fails or dies costs nothing but the
in-process conversion it was meant to save.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from birdhouse.pipeline import ingest
from birdhouse.pipeline.offload import Offload, auto_processes
from birdhouse.schema.columns import parse_schema
from birdhouse.schema.convert import Converted, Converter
from tests.apps import Local

SCHEMA = (
    "timestamp DateTime `json:$.timestamp`, user_id UInt64 `json:$.user_id`, event String `json:$.event`, "
    "value Float64 `json:$.value`, tags Array(String) `json:$.tags`, payload String `json:$.payload`"
)
OPTIONS = {"expand_json_array_lines": True, "max_line_bytes": 4096}
COLUMNS = parse_schema(SCHEMA)
SPEC = pickle.dumps((list(COLUMNS), OPTIONS))

BODIES = [
    b'{"timestamp":"2026-11-26 10:00:00","user_id":1,"event":"a","value":1.5,"tags":["x"],"payload":{"k":[1,2]}}',
    # bad lines of every kind, a BOM, blank lines, an array line, a line over the cap, non-UTF-8 bytes
    b"\xef\xbb\xbf"
    + b"\n".join(
        [
            b'{"timestamp":"2026-11-26T10:00:00Z","user_id":"2","event":"b","value":"1e3","tags":[],"payload":"p"}',
            b"",
            b'{"timestamp":"not a date","user_id":-1,"event":3,"value":null}',
            b"not json",
            b"[1,2]",
            b'[{"user_id":5,"event":"in an array"},{"user_id":6}]',
            b'{"event":"' + b"x" * 5000 + b'"}',
            b'{"event":"\xff\xfe"}',
            b'{"user_id":18446744073709551616}',
        ]
    ),
]


def in_process(body: bytes, details: bool) -> Converted:
    return Converter(COLUMNS, **OPTIONS).convert(body, details=details)  # type: ignore[arg-type]


async def ready(offload: Offload, timeout_s: float = 20.0) -> None:
    """Start the workers (the first call only starts them) and wait until they answer."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while offload.stats()["ready"] < offload.stats()["processes"]:
        assert asyncio.get_running_loop().time() < deadline, offload.stats()
        offload._pick()
        await asyncio.sleep(0.02)


def run(coroutine: Callable[[Offload], Any], processes: int = 1) -> Any:
    async def main() -> Any:
        offload = Offload(processes)
        try:
            return await coroutine(offload)
        finally:
            await offload.aclose()

    return asyncio.run(main())


def test_the_outcome_is_the_in_process_conversion() -> None:
    async def check(offload: Offload) -> None:
        await ready(offload)
        for body in BODIES:
            for details in (False, True):
                got = await offload.convert(b"k1", SPEC, body, details)
                assert got == in_process(body, details)
        assert offload.stats()["offloaded"] == 2 * len(BODIES)
        assert offload.stats()["fallbacks"] == 0

    run(check)


def test_before_a_worker_is_ready_the_caller_converts_in_process() -> None:
    async def check(offload: Offload) -> None:
        assert await offload.convert(b"k1", SPEC, BODIES[0], False) is None
        assert offload.stats()["fallbacks"] == 1
        await ready(offload)
        assert await offload.convert(b"k1", SPEC, BODIES[0], False) == in_process(BODIES[0], False)

    run(check)


def test_replies_reach_their_own_requests_across_workers() -> None:
    bodies = [
        b"\n".join(b'{"user_id":%d,"event":"e%d","tags":["t"]}' % (i * 100 + j, j) for j in range(1 + i % 7))
        for i in range(60)
    ]

    async def check(offload: Offload) -> None:
        await ready(offload)
        results = await asyncio.gather(*(offload.convert(b"k1", SPEC, b, i % 2 == 0) for i, b in enumerate(bodies)))
        for i, (body, got) in enumerate(zip(bodies, results, strict=True)):
            assert got == in_process(body, i % 2 == 0)
        assert offload.stats()["offloaded"] == len(bodies)

    run(check, processes=2)


def test_schemas_are_kept_apart_by_key() -> None:
    other = pickle.dumps((list(parse_schema("event String `json:$.event`")), {}))

    async def check(offload: Offload) -> None:
        await ready(offload)
        wide = await offload.convert(b"wide", SPEC, BODIES[0], False)
        narrow = await offload.convert(b"narrow", other, BODIES[0], False)
        assert wide is not None and narrow is not None
        assert wide.columns == ("timestamp", "user_id", "event", "value", "tags", "payload")
        assert narrow.columns == ("event",)
        assert narrow.rows == b'{"event":"a"}\n'

    run(check)


def test_a_conversion_that_fails_in_the_worker_is_left_to_the_caller() -> None:
    async def check(offload: Offload) -> None:
        await ready(offload)
        assert await offload.convert(b"broken", b"not a pickle", BODIES[0], False) is None
        assert offload.stats()["fallbacks"] == 1
        # the worker survives its error
        assert await offload.convert(b"k1", SPEC, BODIES[0], False) == in_process(BODIES[0], False)

    run(check)


def test_a_worker_that_dies_is_replaced_and_its_requests_fall_back() -> None:
    big = b"\n".join(BODIES[0] for _ in range(200_000))  # ≈ 0.2 s of conversion

    async def check(offload: Offload) -> None:
        await ready(offload)
        worker = offload._workers[0]
        assert worker.process is not None
        first_pid = worker.process.pid
        pending = asyncio.ensure_future(offload.convert(b"k1", SPEC, big, False))
        await asyncio.sleep(0.01)
        os.kill(first_pid, signal.SIGKILL)
        assert await pending is None
        assert offload.stats()["ready"] == 0
        await ready(offload)
        assert worker.process is not None and worker.process.pid != first_pid
        assert await offload.convert(b"k1", SPEC, BODIES[1], True) == in_process(BODIES[1], True)

    run(check)


def test_close_ends_the_workers() -> None:
    async def check(offload: Offload) -> list[Any]:
        await ready(offload)
        processes = [w.process for w in offload._workers]
        await offload.aclose()
        return processes

    for process in run(check, processes=2):
        assert process is not None and process.returncode is not None


def test_zero_processes_never_starts_one() -> None:
    async def check(offload: Offload) -> None:
        assert not offload.enabled
        assert await offload.convert(b"k1", SPEC, BODIES[0], False) is None

    run(check, processes=0)


def test_auto_keeps_a_core_for_the_server() -> None:
    assert [auto_processes(n) for n in (None, 1, 2, 3, 8, 64)] == [0, 0, 1, 2, 4, 4]


def test_large_bodies_through_the_api_land_as_in_process(make_local: Callable[..., Local], monkeypatch: Any) -> None:
    app = make_local(**{"events.conversion_processes": 1})
    app.create_datasource("offloaded", SCHEMA)
    row = b'{"timestamp":"2026-11-26 10:00:00","user_id":%d,"event":"e","value":0.5,"tags":["a"],"payload":{"n":%d}}'
    body = b"\n".join(row % (i, i) for i in range(2000)) + b"\nnot json\n"
    assert len(body) > 64 * 1024
    offload = app.runtime.ingestor.offload
    sent = 0
    for _ in range(200):  # the first requests start the worker and convert in-process meanwhile
        response = app.client.post("/v0/events?name=offloaded", headers=app.auth(), content=body)
        assert response.status_code == 202, response.text
        assert response.json() == {"successful_rows": 2000, "quarantined_rows": 1}
        sent += 1
        if offload.stats()["offloaded"]:
            break
        asyncio.run(asyncio.sleep(0.05))
    assert offload.stats()["offloaded"] == 1
    # Past OFFLOAD_MAX_BYTES the server converts itself (a worker would hold extra copies of a huge body).
    monkeypatch.setattr(ingest, "OFFLOAD_MAX_BYTES", len(body) - 1)
    response = app.client.post("/v0/events?name=offloaded", headers=app.auth(), content=body)
    assert response.json() == {"successful_rows": 2000, "quarantined_rows": 1}
    assert offload.stats()["offloaded"] == 1
    sent += 1
    app.drain()
    query = "SELECT count(), sum(user_id), countDistinct(payload) FROM offloaded FORMAT JSON"
    result = app.client.get("/v0/sql", headers=app.auth(), params={"q": query}).json()["data"][0]
    assert list(result.values()) == [2000 * sent, sent * 1999 * 1000, 2000]
    quarantined = app.client.get(
        "/v0/sql", headers=app.auth(), params={"q": "SELECT count() FROM offloaded_quarantine FORMAT JSON"}
    ).json()["data"][0]
    assert list(quarantined.values()) == [sent]
    metrics = app.client.get("/metrics", headers=app.auth()).text
    assert "birdhouse_conversions_offloaded 1" in metrics


def test_replies_split_at_any_byte_are_reassembled() -> None:
    from birdhouse.pipeline.offload import _Worker
    from birdhouse.schema.worker import READY, REPLY

    results = {i: in_process(body, i % 2 == 1) for i, body in enumerate(BODIES * 2, start=1)}
    stream = REPLY.pack(READY, 1, 0) + b"".join(
        REPLY.pack(i, 1, len(p)) + p for i, p in ((i, pickle.dumps(c)) for i, c in results.items())
    )
    stream += REPLY.pack(99, 0, 5) + b"boom!"

    async def check(piece: int) -> None:
        worker = _Worker()
        loop = asyncio.get_running_loop()
        futures = {i: loop.create_future() for i in [*results, 99]}
        worker.pending.update(futures)
        for start in range(0, len(stream), piece):
            worker.feed(stream[start : start + piece])
        assert worker.ready
        assert {i: futures[i].result() for i in results} == results
        assert futures[99].result() is None
        assert not worker.pending

    for piece in (1, 7, REPLY.size, 4096, len(stream)):
        asyncio.run(check(piece))


SERVER = """
import asyncio, sys
from birdhouse.pipeline.offload import Offload

async def main():
    offload = Offload(1)
    offload._pick()
    while not offload.stats()["ready"]:
        await asyncio.sleep(0.02)
    print(offload._workers[0].process.pid, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan is reaped by whatever adopts it, which may take a while)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_workers_end_when_the_server_is_killed() -> None:
    import subprocess
    import sys
    import time

    with subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            worker = int(server.stdout.readline())
            assert _running(worker)
            server.kill()  # SIGKILL: no shutdown code runs; the worker sees its stdin close
            server.wait(timeout=10)
            deadline = time.monotonic() + 10
            while _running(worker):
                assert time.monotonic() < deadline, "the conversion worker outlived the killed server"
                time.sleep(0.05)
        finally:
            if server.poll() is None:
                server.kill()
