"""Cluster mode (issue: scale-out): two ClickHouse servers as the two shards of
one cluster, and birdhouse nodes in front of them.

Topology (docs/scale-out.md): every birdhouse node points at the same *entry*
server, here shard 1. The entry server holds the catalog, the idempotency
index, the ops log, the delivered-token ledger and the Distributed tables; the
rows themselves live in the local tables of both shards. Pointing node B at
shard 2 instead would give it a catalog of its own (on 18.16 there is no
Keeper, so no Replicated catalog table), which is not the shared-catalog
topology DESIGN.md describes.

The servers are Debian's 18.16 here: no ZooKeeper, so no ON CLUSTER DDL (the
backend detects that and creates the shard tables over each shard's HTTP
port), no EXPLAIN AST (so /v0/sql answers 501 and counts are checked through
the backend and the Data Sources API statistics), no insert_deduplication_token
(the ledger dedups replays).
"""

from __future__ import annotations

import json
import os
import string
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from birdhouse.app import create_app
from birdhouse.backends import BackendError, QueryResult, open_backend
from birdhouse.backends.clickhouse import ClickhouseBackend
from birdhouse.backends.cluster import Cluster, Host
from birdhouse.config import load_settings
from tests.server import LocalServer, free_port

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = "birdhouse_test"


@dataclass
class Shard:
    http_port: int
    tcp_port: int
    process: subprocess.Popen[str] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def count(self, sql: str) -> int:
        response = httpx.post(f"http://{self.endpoint}/", content=sql.encode(), timeout=30)
        assert response.status_code == 200, response.text
        return int(response.text.strip())


@dataclass
class TwoShards:
    shards: list[Shard]
    dsn: str
    catalog_db: str = field(default_factory=lambda: f"bh_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="module")
def two_shards(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoShards]:
    if os.environ.get("BIRDHOUSE_SKIP_CLICKHOUSE") == "1":
        pytest.skip("BIRDHOUSE_SKIP_CLICKHOUSE=1")
    base = tmp_path_factory.mktemp("cluster")
    shards = [Shard(free_port(), free_port()) for _ in range(2)]
    template = string.Template((ROOT / "tests" / "clickhouse" / "cluster.xml.template").read_text())
    config = base / "cluster.xml"
    config.write_text(
        template.substitute(cluster=CLUSTER, shard1_tcp_port=shards[0].tcp_port, shard2_tcp_port=shards[1].tcp_port)
    )
    try:
        for i, shard in enumerate(shards):
            env = {
                **os.environ,
                "CLICKHOUSE_DATA_DIR": str(base / f"shard{i + 1}"),
                "CLICKHOUSE_HTTP_PORT": str(shard.http_port),
                "CLICKHOUSE_TCP_PORT": str(shard.tcp_port),
                "CLICKHOUSE_EXTRA_CONFIG": str(config),
            }
            shard.process = subprocess.Popen(
                [str(ROOT / "scripts" / "clickhouse"), "serve"], stdout=subprocess.PIPE, text=True, env=env
            )
            assert shard.process.stdout is not None
            assert shard.process.stdout.readline().strip() == str(shard.http_port), "shard server did not start"
        endpoints = ",".join(shard.endpoint for shard in shards)
        yield TwoShards(shards, f"clickhouse://default@{shards[0].endpoint}/?cluster={CLUSTER}&shards={endpoints}")
    finally:
        for shard in shards:
            if shard.process is not None:
                shard.process.terminate()
                shard.process.wait(60)
                if shard.process.stdout is not None:
                    shard.process.stdout.close()


def node(cluster: TwoShards, data_dir: Path) -> TestClient:
    settings = load_settings(
        environ={},
        overrides={
            "server.data_dir": str(data_dir),
            "storage.dsn": cluster.dsn,
            "storage.catalog_database": cluster.catalog_db,
            "storage.catalog_refresh_s": 0.2,
        },
    )
    client = TestClient(create_app(settings, local_mode=True))
    client.__enter__()
    return client


@pytest.fixture
def nodes(two_shards: TwoShards, tmp_path: Path) -> Iterator[tuple[TestClient, TestClient]]:
    two_shards.catalog_db = f"bh_{uuid.uuid4().hex[:12]}"  # a catalog of this test's own
    a = node(two_shards, tmp_path / "a")
    b = node(two_shards, tmp_path / "b")
    try:
        yield a, b
    finally:
        b.__exit__(None, None, None)
        a.__exit__(None, None, None)


def eventually(check: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def workspace_database(client: TestClient) -> str:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    workspace = runtime.default_workspace()
    assert workspace is not None
    database: str = workspace.database
    return database


def tables(shard: Shard, database: str) -> dict[str, str]:
    response = httpx.post(
        f"http://{shard.endpoint}/",
        content=f"SELECT name, engine FROM system.tables WHERE database = '{database}' FORMAT JSONEachRow".encode(),
    )
    assert response.status_code == 200, response.text
    return {row["name"]: row["engine"] for row in map(json.loads, response.text.splitlines())}


def test_cluster_mode_is_detected(two_shards: TwoShards) -> None:
    backend = open_backend(two_shards.dsn)
    try:
        assert isinstance(backend, ClickhouseBackend) and backend.topology is not None
        topology = backend.topology
        first, second = two_shards.shards
        assert [(h.shard_num, h.http) for h in topology.hosts] == [(1, first.endpoint), (2, second.endpoint)]
        assert [h.tcp_port for h in topology.hosts] == [s.tcp_port for s in two_shards.shards]
        # No ZooKeeper in the test config: per-shard DDL over HTTP.
        assert topology.distributed_ddl is False
        # A cluster the server does not know, or endpoints that do not match it, fail at open.
        with pytest.raises(ValueError, match=r"not in the ClickHouse server's system\.clusters"):
            open_backend(two_shards.dsn.replace(f"cluster={CLUSTER}", "cluster=nope"))
        with pytest.raises(ValueError, match="lists 1 HTTP endpoint"):
            open_backend(f"clickhouse://default@{two_shards.shards[0].endpoint}/?cluster={CLUSTER}&shards=h:1")
    finally:
        backend.close()


def test_two_nodes_spread_rows_over_both_shards(two_shards: TwoShards, nodes: tuple[TestClient, TestClient]) -> None:
    a, b = nodes
    tokens = a.get("/tokens").json()
    assert b.get("/tokens").json() == tokens, "one catalog: both nodes serve the same workspace and tokens"
    admin = {"Authorization": f"Bearer {tokens['workspace_admin_token']}"}
    schema = "id String `json:$.id`, n Int64 `json:$.n`, twice Int64 MATERIALIZED n * 2"
    created = a.post("/v0/datasources", headers=admin, data={"name": "events", "schema": schema})
    assert created.status_code == 200, created.text

    database = workspace_database(a)
    local = database + "_local"
    entry, other = two_shards.shards
    on_entry_db = {name: engine for name, engine in tables(entry, database).items() if name.startswith("events")}
    assert on_entry_db == {"events": "Distributed", "events_quarantine": "Distributed"}
    for shard in two_shards.shards:
        assert tables(shard, local) == {"events": "MergeTree", "events_quarantine": "MergeTree"}

    # B learns about the data source through the shared catalog and writes to it.
    sent = 0
    for i in range(10):
        for client, label in ((a, "a"), (b, "b")):
            body = "\n".join(json.dumps({"id": f"{label}{i}-{j}", "n": j}) for j in range(25)).encode()
            response = client.post("/v0/events?name=events&wait=true", headers=admin, content=body)
            assert response.status_code == 200, response.text
            assert response.json() == {"successful_rows": 25, "quarantined_rows": 0}
            sent += 25
    bad = b.post("/v0/events?name=events&wait=true", headers=admin, content=b'{"id": "x", "n": "not a number"}')
    assert bad.status_code == 200 and bad.json()["quarantined_rows"] == 1, bad.text

    # Every row is readable through the Distributed table, whichever node took it…
    backend = open_backend(two_shards.dsn)
    try:
        result = backend.query(f"SELECT count(), uniqExact(id), sum(twice) FROM `{database}`.events", "TSV")
        assert result.body.split() == [str(sent).encode(), str(sent).encode(), str(sum(range(25)) * 2 * 20).encode()]
        quarantined = backend.query(f"SELECT count() FROM `{database}`.events_quarantine", "TSV").body
        assert quarantined == b"1\n"
        explain_ast = backend.capabilities.explain_ast
    finally:
        backend.close()

    # …and both nodes report it (statistics sum the local tables of all shards).
    for client in (a, b):
        stats = client.get("/v0/datasources/events", headers=admin).json()["statistics"]
        assert stats["row_count"] == sent and stats["bytes"] > 0
        answer = client.get("/v0/sql", headers=admin, params={"q": "SELECT count() AS c FROM events FORMAT JSON"})
        if explain_ast:
            assert answer.status_code == 200 and answer.json()["data"] == [{"c": sent}], answer.text
        else:  # 18.16: the query guard needs EXPLAIN AST
            assert answer.status_code == 501, answer.text

    # The rows really are spread: both shards hold a share, and the shares add up.
    on_entry = entry.count(f"SELECT count() FROM `{local}`.events")
    on_other = other.count(f"SELECT count() FROM `{local}`.events")
    assert on_entry > 0 and on_other > 0
    assert on_entry + on_other == sent
    assert abs(on_entry - on_other) <= 20  # round robin within each insert block

    # Truncate reaches every shard (a TRUNCATE of the Distributed table would not).
    assert a.post("/v0/datasources/events/truncate", headers=admin).status_code == 200
    assert entry.count(f"SELECT count() FROM `{local}`.events") == 0
    assert other.count(f"SELECT count() FROM `{local}`.events") == 0
    assert b.get("/v0/datasources/events", headers=admin).json()["statistics"]["row_count"] == 0

    # Dropping through B removes the Distributed table and the local tables everywhere.
    assert b.delete("/v0/datasources/events", headers=admin).status_code == 204
    assert "events" not in tables(entry, database)
    for shard in two_shards.shards:
        assert tables(shard, local) == {}
    gone = eventually(lambda: a.get("/v0/datasources/events", headers=admin).status_code == 404)
    assert gone, "A sees the drop through the catalog"


def test_failed_create_leaves_no_table_on_any_shard(
    two_shards: TwoShards, nodes: tuple[TestClient, TestClient]
) -> None:
    a, _ = nodes
    admin = {"Authorization": f"Bearer {a.get('/tokens').json()['workspace_admin_token']}"}
    database = workspace_database(a)
    local = database + "_local"
    first, second = two_shards.shards
    # A leftover local table on shard 2 only (say, of a drop that failed there):
    # the create succeeds on shard 1, then fails on shard 2.
    for sql in (f"CREATE DATABASE IF NOT EXISTS `{local}`", f"CREATE TABLE `{local}`.`broken` (x UInt8) ENGINE = Log"):
        assert httpx.post(f"http://{second.endpoint}/", content=sql.encode()).status_code == 200
    schema = {"name": "broken", "schema": "i UInt32 `json:$.i`"}
    refused = a.post("/v0/datasources", headers=admin, data=schema)
    assert refused.status_code == 400, refused.text
    assert f"shard 2 replica 1 ({second.endpoint})" in refused.json()["error"]
    assert "already exists" in refused.json()["error"]
    # All or nothing: no Distributed table, nothing left on shard 1, no catalog record.
    assert "broken" not in tables(first, database)
    assert "broken" not in tables(first, local)
    assert a.get("/v0/datasources/broken", headers=admin).status_code == 404
    # The rollback dropped the leftover too, so a retry goes through.
    assert "broken" not in tables(second, local)
    assert a.post("/v0/datasources", headers=admin, data=schema).status_code == 200
    assert tables(first, local)["broken"] == tables(second, local)["broken"] == "MergeTree"


def test_a_killed_node_loses_no_acknowledged_row(two_shards: TwoShards, tmp_path: Path) -> None:
    """Node A is a real `birdhouse local` process, SIGKILLed mid-load (some of
    its rows flushed, some only in its WAL) and restarted on its data dir; node
    B takes events meanwhile. Every row acknowledged (200 or 202) by either
    node ends up in the cluster."""
    two_shards.catalog_db = f"bh_{uuid.uuid4().hex[:12]}"
    env = {
        "BIRDHOUSE_STORAGE__CATALOG_DATABASE": two_shards.catalog_db,
        "BIRDHOUSE_STORAGE__CATALOG_REFRESH_S": "0.2",
        # Segments are sealed and delivered every second: at the kill, the rows
        # A acknowledged since its last flush exist only in its WAL.
        "BIRDHOUSE_FLUSH__INTERVAL_MS": "1000",
    }
    data_a = tmp_path / "a"
    server_a = LocalServer(data_a, "--storage", two_shards.dsn, env=env)
    b = node(two_shards, tmp_path / "b")
    backend = open_backend(two_shards.dsn)
    try:
        admin = {"Authorization": f"Bearer {server_a.admin}"}
        created = b.post("/v0/datasources", headers=admin, data={"name": "load", "schema": "id String `json:$.id`"})
        assert created.status_code == 200, created.text
        assert eventually(lambda: httpx.get(f"{server_a.url}/v0/datasources/load", headers=admin).status_code == 200), (
            "A sees the data source B created"
        )
        database = workspace_database(b)

        def stored_ids() -> dict[str, int]:
            rows = backend.query(f"SELECT id, count() FROM `{database}`.load GROUP BY id", "TSV").body.decode()
            return {key: int(n) for key, n in (line.split("\t") for line in rows.splitlines())}

        batch = 10
        acked: set[str] = set()
        sent: set[str] = set()
        stop = threading.Event()

        def load_a() -> None:
            with httpx.Client(base_url=server_a.url, headers=admin, timeout=10) as client:
                for i in range(1_000_000):
                    if stop.is_set():
                        return
                    ids = [f"a{i}-{j}" for j in range(batch)]
                    sent.update(ids)
                    body = "\n".join(json.dumps({"id": x}) for x in ids).encode()
                    try:
                        response = client.post("/v0/events?name=load", content=body)
                    except httpx.HTTPError:
                        return  # the node is gone: this request was not acknowledged
                    if response.status_code in (200, 202):
                        acked.update(ids)
                    time.sleep(0.005)

        loader = threading.Thread(target=load_a)
        loader.start()
        b_acked: set[str] = set()
        for i in range(20):
            ids = [f"b{i}-{j}" for j in range(batch)]
            body = "\n".join(json.dumps({"id": x}) for x in ids).encode()
            response = b.post("/v0/events?name=load", headers=admin, content=body)
            assert response.status_code in (200, 202), response.text
            b_acked.update(ids)
            time.sleep(0.05)
        # Kill A half a flush interval after its first flush reached the shards.
        assert eventually(lambda: any(x.startswith("a") for x in stored_ids()), timeout_s=30), "A flushed rows"
        time.sleep(0.5)
        server_a.kill()
        stop.set()
        loader.join(30)
        acked_before_kill = set(acked)
        only_in_wal = acked_before_kill - stored_ids().keys()
        assert only_in_wal, "the kill left acknowledged rows that only A's WAL holds"
        assert acked_before_kill - only_in_wal, "and rows A had already delivered"

        # A comes back on the same data dir: ready means its WAL was replayed.
        server_a = LocalServer(data_a, "--storage", two_shards.dsn, env=env)
        assert httpx.get(f"{server_a.url}/v0/health").json() == {"status": "ok"}
        assert not only_in_wal - stored_ids().keys(), "the replay delivered what only the WAL held"
        expected = acked_before_kill | b_acked
        assert eventually(lambda: not expected - stored_ids().keys()), "B's rows arrive too"
        stored = stored_ids()
        missing = expected - stored.keys()
        assert not missing, f"{len(missing)} acknowledged row(s) lost, e.g. {sorted(missing)[:5]}"
        assert stored.keys() <= sent | b_acked, "only rows that were sent"
        duplicated = sum(n - 1 for n in stored.values())
        if backend.capabilities.insert_deduplication_token:
            assert duplicated == 0
        else:
            # The ledger's known window (module docstring of backends/cluster.py):
            # a kill between an insert and its ledger row re-sends that one
            # insert, at most the rows A had flushed; usually nothing.
            assert duplicated <= len(acked_before_kill - only_in_wal)
        print(
            f"A acknowledged {len(acked_before_kill)} rows, {len(only_in_wal)} only in its WAL at the kill; "
            f"B {len(b_acked)}; stored {len(stored)} ids, {duplicated} duplicate(s)"
        )
    finally:
        backend.close()
        b.__exit__(None, None, None)
        server_a.stop()


# ------------------------------------------------------------ ON CLUSTER (no Keeper here: statements only)


class Recorder:
    def __init__(self, name: str, log: list[tuple[str, str]]) -> None:
        self.name = name
        self.log = log

    def query(
        self,
        sql: str,
        fmt: str = "JSONEachRow",
        params: Mapping[str, str] | None = None,
        settings: Mapping[str, str | int] | None = None,
    ) -> QueryResult:
        self.log.append((self.name, sql))
        return QueryResult(body=b"3\t100\n")

    def command(self, sql: str, settings: Mapping[str, str | int] | None = None) -> None:
        self.log.append((self.name, sql))
        if "fail" in sql and self.name == "h2":
            raise BackendError("Code: 36. DB::Exception: refused", 36)

    def close(self) -> None:
        pass


def make_cluster(distributed_ddl: bool) -> tuple[Cluster, list[tuple[str, str]]]:
    log: list[tuple[str, str]] = []
    hosts = [Host(1, 1, "h1", 9000, "h1:8123"), Host(2, 1, "h2", 9000, "h2:8123")]
    entry = Recorder("entry", log)
    cluster = Cluster(
        "c", entry, hosts, distributed_ddl=distributed_ddl, open_host=lambda host: Recorder(host.host_name, log)
    )
    return cluster, log


def test_on_cluster_ddl_goes_through_the_entry_server_only() -> None:
    cluster, log = make_cluster(distributed_ddl=True)
    local = "(i UInt8) ENGINE = MergeTree ORDER BY i"
    distributed = "ENGINE = Distributed(`c`, `w_local`, `t`, rowNumberInBlock())"
    cluster.create_table("w", "t", lambda ref: f"CREATE TABLE {ref} {local}", "i UInt8", {})
    assert log == [
        ("entry", "CREATE DATABASE IF NOT EXISTS `w_local` ON CLUSTER `c`"),
        ("entry", f"CREATE TABLE `w_local`.`t` ON CLUSTER `c` {local}"),
        ("entry", f"CREATE TABLE `w`.`t` (\n    i UInt8\n) {distributed}"),
    ]
    log.clear()
    cluster.truncate_table("w", "t")
    cluster.drop_table("w", "t")
    assert log == [
        ("entry", "TRUNCATE TABLE IF EXISTS `w_local`.`t` ON CLUSTER `c`"),
        ("entry", "DROP TABLE IF EXISTS `w`.`t`"),
        ("entry", "DROP TABLE IF EXISTS `w_local`.`t` ON CLUSTER `c`"),
    ]


def test_per_host_ddl_is_undone_when_one_host_refuses() -> None:
    cluster, log = make_cluster(distributed_ddl=False)
    with pytest.raises(BackendError, match=r"shard 2 replica 1 \(h2:8123\): .*refused"):
        cluster.create_table("w", "fail", lambda ref: f"CREATE TABLE {ref} (i UInt8) ENGINE = Log", "i UInt8", {})
    assert [entry for entry in log if "DROP" in entry[1]] == [
        ("entry", "DROP TABLE IF EXISTS `w`.`fail`"),
        ("h1", "DROP TABLE IF EXISTS `w_local`.`fail`"),
        ("h2", "DROP TABLE IF EXISTS `w_local`.`fail`"),
    ]
    assert not any("Distributed" in sql for _, sql in log), "no Distributed table over a missing local table"
    assert cluster.table_stats("w", "t") == (3, 100)
