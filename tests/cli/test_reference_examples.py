"""The curl examples of Tinybird's Events API reference, verbatim (host and
token substituted), against a real `birdhouse local` (issue: Events API)."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import time
from pathlib import Path

import httpx
import zstandard

from tests.server import LocalServer

# The page as shared with the project (beside the checkout), else the copy kept with this test.
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "events-api-reference.md"
REFERENCE = SHARED if SHARED.exists() else Path(__file__).with_name("events-api-reference.md")


def examples() -> list[str]:
    """Every ```shell block of the reference page, in order."""
    text = REFERENCE.read_text()
    return [block.strip() for block in re.findall(r"```shell[^\n]*\n(.*?)```", text, re.DOTALL)]


def test_every_reference_curl_example_works(server: LocalServer, tmp_path: Path) -> None:
    blocks = examples()
    assert len(blocks) == 5, "the reference page has five curl examples"
    ndjson = b'{"date": "2020-04-05 00:05:38", "city": "Chicago"}\n{"date": "2020-04-05 00:07:22", "city": "Madrid"}\n'
    (tmp_path / "body.gz").write_bytes(gzip.compress(ndjson))
    (tmp_path / "body.ndjson.zst").write_bytes(zstandard.ZstdCompressor().compress(ndjson))
    outputs = []
    for block in blocks:
        command = block.replace("<import_token>", server.admin).replace('{% user("apiHost") %}', server.url)
        done = subprocess.run(
            ["bash", "-c", command + " -sS -w '\\n%{http_code}'"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        body, _, status = done.stdout.rpartition("\n")
        assert done.returncode == 0, (block, done.stderr)
        assert status == "202", (block, status, body)
        outputs.append(json.loads(body))
    assert outputs == [
        {"successful_rows": 1, "quarantined_rows": 0},  # single NDJSON
        {"successful_rows": 1, "quarantined_rows": 0},  # JSON with format=json
        {"successful_rows": 2, "quarantined_rows": 0},  # multiple NDJSON
        {"successful_rows": 2, "quarantined_rows": 0},  # gzip
        {"successful_rows": 2, "quarantined_rows": 0},  # zstd
    ]
    auth = {"Authorization": f"Bearer {server.admin}"}
    # events_test and events_example were auto-created from the first events.
    for name, expected in (("events_test", 4), ("events_example", 4)):
        deadline = time.monotonic() + 20  # 202: delivered within the flush interval
        counted: list[dict[str, int]] = []
        while counted != [{"c": expected}] and time.monotonic() < deadline:
            time.sleep(0.1)
            query = {"q": f"SELECT count() c FROM {name}"}
            counted = httpx.get(f"{server.url}/v0/sql", params=query, headers=auth).json()["data"]
        assert counted == [{"c": expected}], name
    schema = httpx.get(f"{server.url}/v0/datasources/events_test", headers=auth).json()["schema"]["sql_schema"]
    assert schema == "`city` String `json:$.city`, `date` DateTime `json:$.date`"
