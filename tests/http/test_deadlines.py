"""Body-read deadlines: a read past its deadline becomes a 408, other
cancellations pass through, and nothing stays registered afterwards."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message, Receive

from birdhouse.http import deadlines as deadlines_module
from birdhouse.http.compression import BodyError, read_wire
from birdhouse.http.deadlines import deadlines


def _stalled_after(chunks: list[bytes]) -> tuple[asyncio.Event, Receive]:
    stall = asyncio.Event()
    pending = list(chunks)

    async def receive() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(0), "more_body": True}
        await stall.wait()  # a client that stopped sending
        return {"type": "http.request", "body": b"", "more_body": False}

    return stall, receive


@pytest.fixture(autouse=True)
def fast_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deadlines_module, "TICK_S", 0.01)


def test_slow_body_gets_408_and_the_task_is_usable_after() -> None:
    async def run() -> None:
        _, receive = _stalled_after([b'{"a":1}'])
        with pytest.raises(BodyError) as caught:
            await read_wire(receive, 1000, timeout_s=0.05)
        assert caught.value.status == 408
        assert "did not arrive within 0.05 s" in caught.value.message
        assert deadlines().pending == 0
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0  # uncancelled: later awaits are not hit
        await asyncio.sleep(0.03)

    asyncio.run(run())


def test_complete_body_within_deadline_is_returned_whole() -> None:
    async def run() -> bytes:
        stall, receive = _stalled_after([b"ab", b"cd"])
        stall.set()
        body = await read_wire(receive, 1000, timeout_s=5)
        assert deadlines().pending == 0
        await asyncio.sleep(0.03)  # the sweeper runs and finds nothing to cancel
        return body

    assert asyncio.run(run()) == b"abcd"


def test_a_foreign_cancellation_is_not_turned_into_408() -> None:
    async def run() -> None:
        _, receive = _stalled_after([])
        reader = asyncio.create_task(read_wire(receive, 1000, timeout_s=60))
        await asyncio.sleep(0.02)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        assert deadlines().pending == 0

    asyncio.run(run())


def test_wire_cap_and_disconnect() -> None:
    async def run() -> None:
        _, receive = _stalled_after([b"x" * 600, b"x" * 600])
        with pytest.raises(BodyError) as caught:
            await read_wire(receive, 1000, timeout_s=5)
        assert caught.value.status == 413

        async def disconnect() -> Message:
            return {"type": "http.disconnect"}

        with pytest.raises(BodyError) as caught:
            await read_wire(disconnect, 1000, timeout_s=5)
        assert caught.value.status == 400
        assert deadlines().pending == 0

    asyncio.run(run())
