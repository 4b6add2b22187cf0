"""`birdhouse append`: batches, compression, retries on 429/503, Ctrl-C, summary."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import zstandard
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from birdhouse import append as append_module
from birdhouse.cli import main
from tests.server import LocalServer, free_port


def ndjson(n: int, start: int = 0) -> bytes:
    return b"".join(json.dumps({"i": i, "s": f"row {i}"}).encode() + b"\n" for i in range(start, start + n))


def run(server_url: str, *args: str, token: str = "t") -> Any:
    return CliRunner().invoke(main, ["append", *args, "--host", server_url, "--token", token])


def test_append_files_of_every_kind(server: LocalServer, tmp_path: Path) -> None:
    auth = {"Authorization": f"Bearer {server.admin}"}
    created = httpx.post(
        f"{server.url}/v0/datasources",
        headers=auth,
        data={"name": "bulk", "schema": "i Int64 `json:$.i`, s String `json:$.s`"},
    )
    assert created.status_code == 200
    plain, gz, zst = tmp_path / "a.ndjson", tmp_path / "b.ndjson.gz", tmp_path / "c.ndjson.zst"
    plain.write_bytes(ndjson(3000) + b'{"i": "bad"}\n')
    gz.write_bytes(gzip.compress(ndjson(2000, 10_000)))
    zst.write_bytes(zstandard.ZstdCompressor().compress(ndjson(1000, 20_000)))
    result = run(server.url, "bulk", str(plain), str(gz), str(zst), "--batch-mb", "0.02", token=server.admin)
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())  # rich wraps long lines
    assert "6,000 rows appended, 1 quarantined" in output
    assert f"quarantined {plain}:3001:" in output and "is a string when a Int64 was expected" in output
    counted = httpx.get(
        f"{server.url}/v0/sql", params={"q": "SELECT count() c, uniqExact(i) u FROM bulk"}, headers=auth
    ).json()["data"]
    assert counted == [{"c": 6000, "u": 6000}]
    # Each batch's Idempotency-Key comes from its file, offset and content: a retried batch, or a
    # re-run of the same files within dedup.window_s, stores nothing twice.
    again = run(server.url, "bulk", str(plain), "--batch-mb", "0.02", token=server.admin)
    assert again.exit_code == 0
    recount = httpx.get(f"{server.url}/v0/sql", params={"q": "SELECT count() c FROM bulk"}, headers=auth).json()
    assert recount["data"] == [{"c": 6000}]


class FlakyServer:
    """Answers 429, then 503, then accepts; records what it accepted."""

    def __init__(self) -> None:
        self.calls = 0
        self.accepted: dict[str, int] = {}
        self.port = free_port()

        async def events(request: Request) -> Response:
            self.calls += 1
            body = await request.body()
            if self.calls == 1:
                return PlainTextResponse("Too many requests\n", 429, headers={"Retry-After": "1"})
            if self.calls == 2:
                return PlainTextResponse("Service temporarily unavailable\n", 503, headers={"Retry-After": "1"})
            lines = body.count(b"\n")
            self.accepted[request.headers["idempotency-key"]] = lines
            return JSONResponse({"successful_rows": lines, "quarantined_rows": 0})

        app = Starlette(routes=[Route("/v0/events", events, methods=["POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, port=self.port, log_level="error", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> FlakyServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def flaky() -> Iterator[FlakyServer]:
    with FlakyServer() as running:
        yield running


def test_retries_429_and_503_then_succeeds(flaky: FlakyServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    original = append_module.Sender.__init__

    def no_sleep(self: append_module.Sender, client: httpx.Client, datasource: str, sleep: Any = None) -> None:
        original(self, client, datasource, slept.append)

    monkeypatch.setattr(append_module.Sender, "__init__", no_sleep)
    data = tmp_path / "rows.ndjson"
    data.write_bytes(ndjson(50))
    result = run(f"http://127.0.0.1:{flaky.port}", "anything", str(data), "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "50 rows appended" in result.output and "(2 retries)" in result.output
    assert slept[0] == 1.0  # Retry-After of the 429 honoured
    assert list(flaky.accepted.values()) == [50]


def test_ctrl_c_stops_cleanly_and_says_how_far(
    flaky: FlakyServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    original = append_module.Sender.__init__

    def interrupting(self: append_module.Sender, client: httpx.Client, datasource: str, sleep: Any = None) -> None:
        original(self, client, datasource, interrupt)

    monkeypatch.setattr(append_module.Sender, "__init__", interrupting)
    data = tmp_path / "rows.ndjson"
    data.write_bytes(ndjson(10))
    result = run(f"http://127.0.0.1:{flaky.port}", "anything", str(data), "--workers", "1")
    assert result.exit_code == 130
    assert "interrupted: 0 rows were stored before stopping" in result.output


def test_a_4xx_stops_the_run_with_the_server_message(server: LocalServer, tmp_path: Path) -> None:
    data = tmp_path / "rows.ndjson"
    data.write_bytes(ndjson(5))
    result = run(server.url, "missing_ds", str(data), token="p.forged.token")
    assert result.exit_code == 1
    assert "HTTP 403: Invalid token" in result.output


def test_batches_cut_at_line_boundaries() -> None:
    import io

    body = ndjson(100)
    cut = list(append_module.batches("x", io.BytesIO(body), 200))
    assert b"".join(b.body for b in cut) == body
    assert all(b.body.endswith(b"\n") for b in cut)
    assert sum(b.lines for b in cut) == 100
    assert len({b.key for b in cut}) == len(cut)
