"""Cluster mode: data source tables spread over the shards of a ClickHouse cluster.

With ``cluster=<name>`` in the DSN, every data source (and its quarantine
table) is two kinds of table:

- a *local* table with the data source's own engine (MergeTree, …) on every
  host of the cluster, in the database ``<workspace database>_local``;
- a ``Distributed(<cluster>, <workspace database>_local, <table>, rowNumberInBlock())``
  table with the data source's name in the workspace database, on the server
  birdhouse connects to (the *entry* server; it may be a shard itself).

Inserts, /v0/sql and materialized views all name the Distributed table, which
is why the rest of birdhouse needs no change: ``table_ref(workspace, name)``
is the Distributed table. Local tables live in a database of their own, so no
user-chosen data source name can collide with a local table's name.

Shards are discovered from the entry server's ``system.clusters``. DDL for the
local tables goes ``ON CLUSTER`` when the server can run distributed DDL (a
ZooKeeper/Keeper is configured: ``system.zookeeper`` exists), otherwise
straight to every host over HTTP. ``system.clusters`` names hosts by their
*native* TCP port, so their HTTP endpoints come from the DSN:
``shards=host:port,host:port`` lists one endpoint per row of
``system.clusters`` in (shard_num, replica_num) order; without it every host
is assumed to serve HTTP on the DSN's port. ``ddl=auto|on_cluster|http``
forces one mode.

Sharding key: ``rowNumberInBlock()`` rather than ``rand()``. Both spread rows
evenly (round robin within each insert block), but only the former sends the
same rows to the same shard when a WAL segment is replayed. That matters for
dedup: a replayed insert carries the same ``insert_deduplication_token``, the
Distributed table forwards it with its sub-block to each shard, and each
shard's local table drops a token it has seen. With ``rand()`` a replay after
a *partial* failure (shard 1 committed, shard 2 did not) would send shard 1 a
different subset under a token it already has: some rows lost, some doubled.
(The block a Distributed table receives is a function of the insert's bytes
and settings, and a replay sends the same bytes.)

Exactly-once through a Distributed table:

- inserts are synchronous (``insert_distributed_sync=1``, or
  ``distributed_foreground_insert=1`` on servers that renamed it; the backend
  adds it to every insert and command), so a 200 means the rows are committed
  on their shards, never queued on the entry server's disk;
- servers with ``insert_deduplication_token``: the token reaches every shard
  (above), so a replay is a no-op even after a partial failure;
- servers without it (18.16): the backend's delivered-token ledger sits on the
  entry server and records the insert into the Distributed table once the
  synchronous insert succeeded. A full replay is skipped. The remaining gap
  is a *partial* failure: when one shard committed its part and another
  failed, the insert fails as a whole, nothing is recorded, and the retry
  writes the committed shard's rows a second time (plain MergeTree on those
  servers has no block dedup either). The same holds for a crash between the
  insert and the ledger write (see ``ClickhouseBackend._ensure_ledger``).

Catalog, ops log, idempotency index and ledger stay plain tables on the entry
server, which is therefore where every birdhouse node must point.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from birdhouse.backends.base import BackendError

if TYPE_CHECKING:
    from birdhouse.backends.base import QueryResult

# Cluster names come from remote_servers XML element names.
CLUSTER_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_ENDPOINT_RE = re.compile(r"(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})")
LOCAL_SUFFIX = "_local"
DDL_MODES = ("auto", "on_cluster", "http")


class _Server(Protocol):
    """What the cluster needs of a connection (ClickhouseBackend has it)."""

    def query(
        self,
        sql: str,
        fmt: str = "JSONEachRow",
        params: Mapping[str, str] | None = None,
        settings: Mapping[str, str | int] | None = None,
    ) -> QueryResult: ...

    def command(self, sql: str, settings: Mapping[str, str | int] | None = None) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Host:
    """One row of ``system.clusters`` and the HTTP endpoint birdhouse uses for it."""

    shard_num: int
    replica_num: int
    host_name: str
    tcp_port: int
    http: str  # host:port


def quote(name: str) -> str:
    if not _IDENT_RE.fullmatch(name):
        raise ValueError(f"invalid identifier {name!r}")
    return f"`{name}`"


def parse_endpoints(text: str) -> list[str]:
    endpoints = [part.strip() for part in text.split(",") if part.strip()]
    for endpoint in endpoints:
        match = _ENDPOINT_RE.fullmatch(endpoint)
        if match is None or not 0 < int(match.group(2)) < 65536:
            raise ValueError(f"invalid shards= entry {endpoint!r}: expected host:http_port")
    return endpoints


def discover_hosts(entry: _Server, cluster: str, endpoints: Sequence[str], default_port: int) -> list[Host]:
    """The hosts of ``cluster`` as the entry server sees them, each with its
    HTTP endpoint (``endpoints`` in system.clusters order, or the host name with
    ``default_port`` when none are given)."""
    if not CLUSTER_NAME_RE.fullmatch(cluster):
        raise ValueError(f"invalid cluster name {cluster!r}")
    # The name passed the pattern above: it cannot leave the quotes (old
    # servers have no query parameters).
    rows = [
        line.split("\t")
        for line in entry.query(
            "SELECT shard_num, replica_num, host_name, port FROM system.clusters "
            f"WHERE cluster = '{cluster}' ORDER BY shard_num, replica_num",
            "TSV",
        )
        .body.decode()
        .splitlines()
    ]
    if not rows:
        known = entry.query("SELECT DISTINCT cluster FROM system.clusters ORDER BY cluster", "TSV").body.decode()
        raise ValueError(
            f"cluster {cluster!r} is not in the ClickHouse server's system.clusters "
            f"(remote_servers); it lists: {', '.join(known.split()) or 'none'}"
        )
    if endpoints and len(endpoints) != len(rows):
        listed = ", ".join(f"shard {r[0]} replica {r[1]} {r[2]}:{r[3]}" for r in rows)
        raise ValueError(
            f"shards= lists {len(endpoints)} HTTP endpoint(s) but cluster {cluster!r} has {len(rows)} host(s) "
            f"({listed}); give one host:http_port per host, in this order"
        )
    return [
        Host(int(shard), int(replica), host, int(port), endpoints[i] if endpoints else f"{host}:{default_port}")
        for i, (shard, replica, host, port) in enumerate(rows)
    ]


class Cluster:
    """DDL and statistics for data source tables in cluster mode.

    ``entry`` is the server birdhouse connects to; ``open_host`` opens a
    connection to one host's HTTP endpoint (lazily, on the first per-host DDL,
    so a host that is down does not stop birdhouse from starting and
    accepting events into its WAL)."""

    def __init__(
        self,
        name: str,
        entry: _Server,
        hosts: Sequence[Host],
        *,
        distributed_ddl: bool,
        open_host: Callable[[Host], _Server],
    ) -> None:
        if not CLUSTER_NAME_RE.fullmatch(name):
            raise ValueError(f"invalid cluster name {name!r}")
        self.name = name
        self.entry = entry
        self.hosts = list(hosts)
        self.distributed_ddl = distributed_ddl
        self._open_host = open_host
        self._connections: dict[str, _Server] = {}
        self._databases: set[str] = set()
        self._lock = threading.Lock()

    # ------------------------------------------------------------ naming

    @staticmethod
    def local_database(database: str) -> str:
        return database + LOCAL_SUFFIX

    def local_ref(self, database: str, table: str) -> str:
        return f"{quote(self.local_database(database))}.{quote(table)}"

    def _on_cluster(self) -> str:
        return f" ON CLUSTER `{self.name}`"

    # ------------------------------------------------------------ per host

    def _connection(self, host: Host) -> _Server:
        with self._lock:
            connection = self._connections.get(host.http)
            if connection is None:
                connection = self._connections[host.http] = self._open_host(host)
            return connection

    def _every_host(self, sql: str, settings: Mapping[str, str | int] | None = None) -> None:
        for host in self.hosts:
            try:
                self._connection(host).command(sql, settings=settings)
            except BackendError as exc:
                raise type(exc)(
                    f"shard {host.shard_num} replica {host.replica_num} ({host.http}): {exc.message}", exc.code
                ) from exc

    def _local_ddl(self, sql_without_cluster: str, sql_on_cluster: str, settings: Mapping[str, str | int]) -> None:
        if self.distributed_ddl:
            self.entry.command(sql_on_cluster, settings=settings)
        else:
            self._every_host(sql_without_cluster, settings)

    def ensure_local_database(self, database: str) -> None:
        local = quote(self.local_database(database))
        if local in self._databases:
            return
        self._local_ddl(
            f"CREATE DATABASE IF NOT EXISTS {local}", f"CREATE DATABASE IF NOT EXISTS {local}{self._on_cluster()}", {}
        )
        self._databases.add(local)

    # ------------------------------------------------------------ tables

    def create_table(
        self,
        database: str,
        table: str,
        local_sql: Callable[[str], str],
        columns_sql: str,
        settings: Mapping[str, str | int],
    ) -> None:
        """Create ``table`` as local tables on every host plus the Distributed
        table on the entry server. ``local_sql(ref)`` renders the local table's
        CREATE statement for a table reference; ``columns_sql`` is the column
        list of the Distributed table. All or nothing: on failure whatever was
        created is dropped again and the error raised."""
        self.ensure_local_database(database)
        local_ref = self.local_ref(database, table)
        distributed_ref = f"{quote(database)}.{quote(table)}"
        distributed = (
            f"CREATE TABLE {distributed_ref} (\n    {columns_sql}\n) ENGINE = Distributed("
            f"`{self.name}`, {quote(self.local_database(database))}, {quote(table)}, rowNumberInBlock())"
        )
        try:
            self._local_ddl(local_sql(local_ref), local_sql(local_ref + self._on_cluster()), settings)
            self.entry.command(distributed, settings=settings)
        except BackendError:
            self._undo(database, table)
            raise

    def _undo(self, database: str, table: str) -> None:
        # Best effort: the original error is what the caller needs.
        with contextlib.suppress(BackendError):
            self.drop_table(database, table)

    def drop_table(self, database: str, table: str) -> None:
        """Drop the Distributed table, then the local tables (idempotent: a
        failed drop can simply be retried)."""
        self.entry.command(f"DROP TABLE IF EXISTS {quote(database)}.{quote(table)}")
        local = self.local_ref(database, table)
        self._local_ddl(f"DROP TABLE IF EXISTS {local}", f"DROP TABLE IF EXISTS {local}{self._on_cluster()}", {})

    def truncate_table(self, database: str, table: str) -> None:
        # TRUNCATE on a Distributed table does not reach the shards (18.16
        # accepts it and does nothing; newer servers only clear its queue).
        local = self.local_ref(database, table)
        self._local_ddl(
            f"TRUNCATE TABLE IF EXISTS {local}", f"TRUNCATE TABLE IF EXISTS {local}{self._on_cluster()}", {}
        )

    def drop_database(self, database: str) -> None:
        """Drop a workspace's local database on every host (for workspace deletion)."""
        local = quote(self.local_database(database))
        self._local_ddl(f"DROP DATABASE IF EXISTS {local}", f"DROP DATABASE IF EXISTS {local}{self._on_cluster()}", {})
        self._databases.discard(local)

    def table_stats(self, database: str, table: str) -> tuple[int, int]:
        """Rows and bytes of ``table`` summed over the local tables of all
        shards (one replica each), through the entry server's ``cluster()``
        table function."""
        local_db = self.local_database(database)
        quote(local_db), quote(table)  # validated: they are spliced into quotes below
        body = self.entry.query(
            "SELECT toUInt64(sum(rows)) AS r, toUInt64(sum(bytes_on_disk)) AS b "
            f"FROM cluster('{self.name}', system, parts) "
            f"WHERE active AND database = '{local_db}' AND table = '{table}'",
            "TSV",
        ).body.split()
        return (int(body[0]), int(body[1])) if len(body) == 2 else (0, 0)

    def host_counts(self, database: str, table: str) -> list[tuple[Host, int]]:
        """``count()`` of the local table on every host (operators and tests:
        how the rows are spread)."""
        local = self.local_ref(database, table)
        return [
            (host, int(self._connection(host).query(f"SELECT count() FROM {local}", "TSV").body.strip() or b"0"))
            for host in self.hosts
        ]

    def close(self) -> None:
        with self._lock:
            connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            connection.close()
