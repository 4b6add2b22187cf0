"""A ClickHouse server (or cluster) over its HTTP interface, through httpx.

``clickhouse://user:pass@host:8123/?database=default&cluster=name`` (also
``timeout_s``, ``connect_timeout_s``, ``secure=1``, ``ledger_database``, and for
cluster mode ``shards=host:http_port,…`` and ``ddl=auto|on_cluster|http``: see
:mod:`birdhouse.backends.cluster`). Statements travel
as the POST body, settings as URL parameters (so, unlike chDB, DDL never has
a SETTINGS clause that could be read as table settings), values as
``param_<name>`` URL parameters or as the bytes of an input format.

Servers differ a lot by version (Debian ships 18.16), so what the server can
do is detected at open (:func:`_detect`) rather than assumed from a number.
Where it lacks something a caller relies on, this module either compensates
with the same outcome (the delivered-token ledger, experimental DDL flags,
settings whose absence means the check they relax does not exist either) or
fails loudly (query parameters: values are never spliced into SQL).

Cluster mode (``cluster=``): :mod:`birdhouse.backends.cluster` creates data
source tables as local tables on every shard plus a Distributed table here;
this module makes every insert into them synchronous
(``insert_distributed_sync``/``distributed_foreground_insert``), so an
acknowledged insert is committed on the shards. Dedup through a Distributed
table: ``insert_deduplication_token`` travels with the forwarded sub-blocks to
each shard's local table (sharding by ``rowNumberInBlock()`` keeps a replay's
sub-blocks identical); on servers without it the ledger records the insert
into the Distributed table as a whole, which leaves one gap — a flush that
committed on some shards and failed on others is retried whole, duplicating
the committed part (details in the cluster module).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from birdhouse.backends.base import BackendError, BackendUnavailable, Capabilities, QueryResult
from birdhouse.backends.cluster import DDL_MODES, Cluster, Host, discover_hosts, parse_endpoints

# An exception text as the server writes it, old (18.x: "Code: 60, e.displayText() = DB::Exception: …,
# e.what() = DB::Exception") and new ("Code: 60. DB::Exception: … (UNKNOWN_TABLE) (version 23.8.1.1)").
_EXC_RE = re.compile(rb"(?:^|\n)(Code: (\d+)[.,] [^\n]*?DB::Exception[^\n]*)\n?$")
_CODE_RE = re.compile(r"Code: (\d+)")
_TAIL_RE = re.compile(r"\s*\(version [0-9.]+(?: \([^)]*\))?[^)]*\)\s*$")
_SETTING_RE = re.compile(r"[a-z_][a-z0-9_]*")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_PLACEHOLDER_RE = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([^}]+?)\s*\}")
_DEDUP_KEY_SETTING = "insert_deduplication_token"

# Settings that may be dropped when the server does not list them, because the
# outcome is the same without them: the check they relax does not exist yet
# (suspicious types, partitions per insert), or this backend compensates (tokens
# and dependent-MV dedup: the ledger skips the whole insert, MVs included).
_OPTIONAL_SETTINGS = frozenset(
    {_DEDUP_KEY_SETTING, "deduplicate_blocks_in_dependent_materialized_views", "max_partitions_per_insert_block"}
    | {"allow_suspicious_low_cardinality_types", "allow_suspicious_fixed_string_types"}
)
# The embedded engine's defaults where server defaults differ; applied unless the
# caller sets them, so both backends parse input and format output alike
# (e.g. the catalog decodes UInt64 versions as JSON numbers, not strings).
_ALIGNED_DEFAULTS: dict[str, str | int] = {
    "output_format_json_quote_64bit_integers": 0,
    "input_format_skip_unknown_fields": 1,
    "input_format_null_as_default": 1,
    "input_format_defaults_for_omitted_fields": 1,
    "date_time_input_format": "best_effort",
    # Transport, not alignment: a late error as plain text at the end of the
    # body (see _late_error), never folded into a JSON document's fields.
    "http_write_exception_in_output_format": 0,
}
# DDL flags sent with every command() when the server has them switched off.
_EXPERIMENTAL_FLAGS = tuple(
    f"allow_experimental_{feature}"
    for feature in ("low_cardinality_type", "map_type", "json_type", "lightweight_delete")
)
_STRING_TYPES = re.compile(r"(?:LowCardinality\()?(?:Nullable\()?(?:String|FixedString\(\d+\))\)*")


def _message(text: str) -> str:
    # One spelling for every server generation (and the same as chDB's).
    text = text.strip().replace(", e.displayText() = ", ". ").removesuffix(", e.what() = DB::Exception")
    return _TAIL_RE.sub("", text).strip()


def _escape_param(value: str) -> str:
    # The server reads parameter values in TSV-escaped form: a raw tab or a
    # backslash would otherwise change or break the value.
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


class ClickhouseBackend:
    """One ClickHouse server; thread-safe (httpx pools keep-alive connections)."""

    def __init__(self, dsn: str, *, transport: httpx.BaseTransport | None = None) -> None:
        self.dsn = dsn
        parts = urlsplit(dsn)
        if parts.scheme != "clickhouse" or not parts.hostname:
            raise ValueError(f"expected clickhouse://[user[:password]@]host[:port]/?…, got {dsn!r}")
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path_db = parts.path.strip("/")
        self.database: str = query.get("database") or path_db or "default"
        self.cluster: str | None = query.get("cluster") or None
        # Cluster mode (None without cluster=): discovered once the server answers.
        self.topology: Cluster | None = None
        shard_endpoints = parse_endpoints(query.get("shards", ""))
        ddl_mode = query.get("ddl", "auto")
        if ddl_mode not in DDL_MODES:
            raise ValueError(f"invalid ddl={ddl_mode!r}; expected one of {', '.join(DDL_MODES)}")
        # Added to every insert and command in cluster mode (see _open_cluster).
        self._cluster_settings: dict[str, str | int] = {}
        self._query_settings: dict[str, str | int] = {}
        ledger_db = query.get("ledger_database", "birdhouse")
        if not _IDENT_RE.fullmatch(ledger_db):
            raise ValueError(f"invalid ledger_database {ledger_db!r}")
        self.ledger_table = f"`{ledger_db}`.`delivered_tokens`"
        auth = (unquote(parts.username or "default"), unquote(parts.password or ""))
        timeout = httpx.Timeout(float(query.get("timeout_s", 300)), connect=float(query.get("connect_timeout_s", 5)))
        self._client = httpx.Client(
            # secure=1 for TLS endpoints (ClickHouse Cloud listens on 8443).
            base_url=f"{'https' if query.get('secure') == '1' else 'http'}://{parts.hostname}:{parts.port or 8123}/",
            auth=auth,
            timeout=timeout,
            # Idle connections are dropped before the server's keep_alive_timeout
            # (3 s by default) closes them under a request we are sending.
            limits=httpx.Limits(max_keepalive_connections=8, keepalive_expiry=2),
            transport=transport,  # tests substitute a fake server
        )
        self._server_settings: dict[str, str] = {}
        self._ledger_lock = threading.Lock()
        self._ledger_ready = False
        try:
            self.capabilities = self._detect()
            if self.cluster is not None:
                self._open_cluster(self.cluster, shard_endpoints, ddl_mode, parts.port or 8123)
        except BaseException:
            self._client.close()
            raise

    def _open_cluster(self, cluster: str, endpoints: list[str], ddl_mode: str, port: int) -> None:
        known = self._server_settings
        # Synchronous Distributed inserts: a 200 means the rows are committed on
        # their shards, not queued on this server's disk (renamed in 23.x).
        sync = next((s for s in ("distributed_foreground_insert", "insert_distributed_sync") if s in known), None)
        if sync is None:
            raise ValueError(
                f"ClickHouse {self.capabilities.version} has neither insert_distributed_sync nor "
                "distributed_foreground_insert: Distributed inserts cannot be made synchronous"
            )
        self._cluster_settings[sync] = 1
        if "distributed_product_mode" in known:
            # A subquery over another data source (`IN (SELECT … FROM other)`)
            # is a subquery over another Distributed table: run it once here
            # and ship its result (GLOBAL IN), the answer a single server gives,
            # instead of refusing it (the default, `deny`).
            self._query_settings["distributed_product_mode"] = "global"
        if ddl_mode == "auto":
            # ON CLUSTER needs a ZooKeeper/Keeper; system.zookeeper exists only with one.
            try:
                self._post(params={"query": "SELECT count() FROM system.zookeeper WHERE path = '/'"})
                distributed_ddl = True
            except BackendUnavailable:
                raise
            except BackendError:
                distributed_ddl = False
        else:
            distributed_ddl = ddl_mode == "on_cluster"
        hosts = discover_hosts(self, cluster, endpoints, port)
        self.topology = Cluster(cluster, self, hosts, distributed_ddl=distributed_ddl, open_host=self._open_host)

    def _open_host(self, host: Host) -> ClickhouseBackend:
        """A connection to one host of the cluster: this DSN's credentials, TLS
        and timeouts, that host's HTTP endpoint, no cluster of its own."""
        parts = urlsplit(self.dsn)
        userinfo = parts.netloc.rpartition("@")[0]
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        keep = {k: query[k] for k in ("secure", "timeout_s", "connect_timeout_s") if k in query}
        suffix = "".join(f"&{k}={v}" for k, v in keep.items())
        at = userinfo + "@" if userinfo else ""
        return ClickhouseBackend(f"clickhouse://{at}{host.http}/?database=default{suffix}")

    def _post(
        self,
        *,
        params: dict[str, str],
        content: bytes | None = None,
        files: dict[str, tuple[str, bytes]] | None = None,
    ) -> tuple[bytes, httpx.Response, float]:
        started = time.monotonic()
        try:
            response = self._client.post("", params={"database": self.database, **params}, content=content, files=files)
        except httpx.TimeoutException as exc:
            raise BackendUnavailable(f"ClickHouse timed out: {exc}") from exc
        except httpx.TransportError as exc:
            raise BackendUnavailable(f"ClickHouse unreachable: {exc}") from exc
        body = response.content
        elapsed = time.monotonic() - started
        header_code = response.headers.get("X-ClickHouse-Exception-Code")
        if response.status_code != 200 or header_code:
            text = _message(body[-65536:].decode(errors="replace"))
            match = _CODE_RE.search(text)
            code = int(header_code) if header_code else int(match.group(1)) if match else None
            if code is None and response.status_code in (502, 503, 504):
                # A proxy or load balancer in front of an unreachable server.
                raise BackendUnavailable(f"ClickHouse HTTP {response.status_code}: {text[:500]}")
            raise BackendError(text or f"ClickHouse HTTP {response.status_code}", code)
        late = _late_error(body)
        if late is not None:
            raise late
        return body, response, elapsed

    def _url_settings(self, settings: Mapping[str, str | int] | None, *, ddl: bool = False) -> dict[str, str]:
        known = self._server_settings
        merged: dict[str, str | int] = {k: v for k, v in _ALIGNED_DEFAULTS.items() if not known or k in known}
        if ddl:
            merged.update({flag: 1 for flag in _EXPERIMENTAL_FLAGS if known.get(flag) == "0"})
        for key, value in (settings or {}).items():
            if not _SETTING_RE.fullmatch(key):
                raise ValueError(f"invalid setting name {key!r}")
            if known and key not in known and key in _OPTIONAL_SETTINGS:
                continue
            merged[key] = value
        # readonly goes last: some servers refuse any setting changed after it.
        readonly = merged.pop("readonly", None)
        out = {k: str(v) for k, v in merged.items()}
        if readonly is not None:
            out["readonly"] = str(readonly)
        return out

    def _detect(self) -> Capabilities:
        def rows(sql: str) -> list[list[str]]:
            body, _, _ = self._post(params={"query": sql + " FORMAT TSV"})
            return [line.split("\t") for line in body.decode().splitlines()]

        version = rows("SELECT version()")[0][0]
        self._server_settings = dict((r[0], r[1]) for r in rows("SELECT name, value FROM system.settings"))
        try:
            tree_settings = {r[0] for r in rows("SELECT name FROM system.merge_tree_settings")}
            types = frozenset(r[0] for r in rows("SELECT name FROM system.data_type_families"))
        except BackendError:  # tables younger than the server: assume the modern answer
            tree_settings, types = {"non_replicated_deduplication_window"}, frozenset()

        def probe(sql: str, params: dict[str, str] | None = None) -> bool:
            try:
                self._post(params={"query": sql, **(params or {})})
            except BackendUnavailable:
                raise
            except BackendError:  # a syntax error or an unknown setting `param_p`
                return False
            return True

        numeric = tuple(int(p) for p in re.findall(r"\d+", version)[:2])
        has_token = _DEDUP_KEY_SETTING in self._server_settings
        return Capabilities(
            version=version,
            insert_deduplication_token=has_token,
            low_cardinality="LowCardinality" in types or not types,
            datetime64="DateTime64" in types or not types,
            map_type="Map" in types or not types,
            bool_type="Bool" in types or not types,
            lightweight_delete=numeric >= (22, 8),
            explain_ast=probe("EXPLAIN AST SELECT 1"),
            query_params=probe("SELECT {p:UInt8}", {"param_p": "1"}),
            low_cardinality_flag=self._server_settings.get("allow_experimental_low_cardinality_type") == "0",
            dedup_window="non_replicated_deduplication_window" in tree_settings,
            ttl=numeric >= (19, 6),
            token_ledger=not has_token,
            data_types=types,
            insert_defaults="input_format_defaults_for_omitted_fields" in self._server_settings,
        )

    def query(
        self,
        sql: str,
        fmt: str = "JSONEachRow",
        params: Mapping[str, str] | None = None,
        settings: Mapping[str, str | int] | None = None,
    ) -> QueryResult:
        if self._query_settings:
            settings = {**self._query_settings, **(settings or {})}
        url = {"default_format": fmt, **self._url_settings(settings)}
        if params:
            if not self.capabilities.query_params:
                raise BackendError(
                    f"ClickHouse {self.capabilities.version} does not support query parameters "
                    f"({{name:Type}}); birdhouse never splices values into SQL, so this query cannot run here"
                )
            types = dict(_PLACEHOLDER_RE.findall(sql))
            for name, value in params.items():
                string_like = _STRING_TYPES.fullmatch(types.get(name, "").strip()) is not None
                url[f"param_{name}"] = _escape_param(value) if string_like else value
        body, response, elapsed = self._post(params=url, content=sql.encode())
        summary = _summary(response)
        return QueryResult(
            body=body,
            rows_read=int(summary.get("read_rows", 0)),
            bytes_read=int(summary.get("read_bytes", 0)),
            elapsed_s=int(summary["elapsed_ns"]) / 1e9 if "elapsed_ns" in summary else elapsed,
        )

    def command(self, sql: str, settings: Mapping[str, str | int] | None = None) -> None:
        # Cluster settings too: an INSERT … SELECT into a Distributed table is synchronous.
        merged = {**self._cluster_settings, **(settings or {})}
        self._post(params=self._url_settings(merged, ddl=True), content=sql.encode())

    def insert(
        self,
        table: str,
        data: bytes,
        fmt: str = "JSONEachRow",
        columns: tuple[str, ...] | None = None,
        settings: Mapping[str, str | int] | None = None,
    ) -> int:
        settings = settings or {}
        token = settings.get(_DEDUP_KEY_SETTING)
        if token is None or not self.capabilities.token_ledger:
            return self._insert(table, data, fmt, columns, settings)
        # Exactly-once for servers without insert_deduplication_token: the
        # delivered-token ledger (see _ensure_ledger for what it cannot cover).
        with self._ledger_lock:
            self._ensure_ledger()
            key = {"table": table.replace("`", ""), "token": str(token)}  # `db`.`t` and db.t are one table
            if self._ledger_has(key):
                return 0  # what the engine reports for a block it deduplicated
            plain = {k: v for k, v in settings.items() if k != _DEDUP_KEY_SETTING}
            written = self._insert(table, data, fmt, columns, plain)
            record = json.dumps({**key, "at": int(time.time())}).encode() + b"\n"
            self._insert(self.ledger_table, record, "JSONEachRow", None, {"insert_deduplicate": 0})
            return written

    def _insert(
        self, table: str, data: bytes, fmt: str, columns: tuple[str, ...] | None, settings: Mapping[str, str | int]
    ) -> int:
        column_list = " (" + ", ".join(f"`{c}`" for c in columns) + ")" if columns else ""
        settings = {**self._cluster_settings, **settings}
        url = {"query": f"INSERT INTO {table}{column_list} FORMAT {fmt}", **self._url_settings(settings)}
        _, response, _ = self._post(params=url, content=data)
        summary = _summary(response)
        if "written_rows" in summary:
            return int(summary["written_rows"])
        # Servers before the summary header: count rows of line-per-row formats.
        line_per_row = fmt.startswith(("JSONEachRow", "TSV", "CSV"))
        return sum(1 for line in data.splitlines() if line.strip()) if line_per_row else 0

    def close(self) -> None:
        if self.topology is not None:
            self.topology.close()
        self._client.close()

    def _ledger_has(self, key: dict[str, str]) -> bool:
        # The key travels as data (an external table), never as SQL text.
        body, _, _ = self._post(
            params={
                "query": f"SELECT count() FROM {self.ledger_table} WHERE (table, token) IN "
                "(SELECT table, token FROM probe) FORMAT TSV",
                "probe_structure": "table String, token String",
                "probe_format": "JSONEachRow",
            },
            files={"probe": ("probe", json.dumps(key).encode() + b"\n")},
        )
        return int(body.strip() or b"0") > 0

    def _ensure_ledger(self) -> None:
        """The delivered-token ledger: ``(table, token)`` recorded after the
        engine acknowledged an insert that carried the token; a later insert
        with a recorded token is skipped and reports 0 rows, like a block the
        engine deduplicated. Identical to server-side tokens for callers, but
        for what it does *not* guarantee:

        - a crash or outage after the data insert was acknowledged and before
          the ledger row was written leaves no trace, so replaying that one
          segment inserts its rows again (the server-side token closes this
          window; the ledger narrows it to one round trip);
        - check-insert-record is atomic only within this process (a lock); two
          processes never replay one token (each node replays its own WAL);
        - entries outlive a dropped table (tokens embed request ids, so a new
          table never meets an old one).
        """
        if self._ledger_ready:
            return
        database = self.ledger_table.split(".")[0]
        self.command(f"CREATE DATABASE IF NOT EXISTS {database}")
        # Partitioned by month so an operator can drop old months; tokens are
        # only ever replayed within hours of their first delivery.
        self.command(
            f"CREATE TABLE IF NOT EXISTS {self.ledger_table} (table String, token String, at DateTime) "
            "ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(at) ORDER BY (table, token)"
        )
        self._ledger_ready = True


def _late_error(body: bytes) -> BackendError | None:
    """The error a 200 response carries when the query failed after the status
    line went out with the first blocks: the last line of the body, or (24.11+)
    a block framed by ``__exception__`` markers."""
    tail = body[-16384:]
    if tail.rstrip().endswith(b"__exception__"):
        framed = tail[tail.find(b"__exception__") :].decode(errors="replace")
        line = next((text for text in framed.splitlines() if text.startswith("Code: ")), framed)
        code = _CODE_RE.search(line)
        return BackendError(_message(line), int(code.group(1)) if code else None)
    match = _EXC_RE.search(tail)
    if match is None:
        return None
    return BackendError(_message(match.group(1).decode(errors="replace")), int(match.group(2)))


def _summary(response: httpx.Response) -> dict[str, Any]:
    try:
        decoded = json.loads(response.headers.get("X-ClickHouse-Summary") or "{}")
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}
