"""Embedded storage: the ClickHouse engine in-process through chDB.

chDB allows one data path per process, so a :class:`ChdbBackend` owns the
process-wide embedded server while it is open. Statements are serialised by a
lock: the session object is not documented as safe for concurrent use, and a
single engine already parallelises each statement internally.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from birdhouse.backends.base import BackendError, BackendUnavailable, Capabilities, QueryResult
from birdhouse.backends.chdb_journal import InsertJournal

_CODE_RE = re.compile(r"Code:\s*(\d+)")
# The engine appends its version and a stack-trace hint; people need neither.
_TAIL_RE = re.compile(r"\s*\(version [0-9.]+[^)]*\)\s*$")


def _error(exc: Exception) -> BackendError:
    text = str(exc).strip()
    for prefix in ("Streaming insert finish failed: ", "Failed to create connection: "):
        text = text.removeprefix(prefix)
    match = _CODE_RE.search(text)
    return BackendError(_TAIL_RE.sub("", text), int(match.group(1)) if match else None)


def _journal_write(write: Callable[..., None], *args: str) -> None:
    """A journal write that fails makes the insert a transient failure: the
    flusher keeps the segment and retries (a committed insert is then
    deduplicated), instead of running an insert a crash could not resolve."""
    try:
        write(*args)
    except OSError as exc:
        raise BackendUnavailable(f"cannot write the insert journal: {exc}") from exc


def _settings_clause(settings: Mapping[str, str | int] | None) -> str:
    if not settings:
        return ""
    parts = []
    for key, value in settings.items():
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", key):
            raise ValueError(f"invalid setting name {key!r}")
        if isinstance(value, int):
            parts.append(f"{key}={value}")
        else:
            escaped = value.replace("\\", "\\\\").replace("'", "\\'")
            parts.append(f"{key}='{escaped}'")
    return " SETTINGS " + ", ".join(parts)


class ChdbBackend:
    """A chDB session on ``path`` (created if missing)."""

    def __init__(self, path: str | Path) -> None:
        try:
            from chdb import session
        except ImportError as exc:  # pragma: no cover - chdb is a hard dependency
            raise RuntimeError("chDB is missing: pip install 'chdb>=4.4'") from exc
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.dsn = f"chdb://{self.path}"
        self._lock = threading.Lock()
        self._tables: dict[str, tuple[bool, str | None]] = {}
        try:
            self._session: Any = session.Session(str(self.path))  # type: ignore[no-untyped-call]
        except Exception as exc:
            raise _error(exc) from exc
        # After the engine loaded its parts: it resolves an insert left in flight.
        self._journal = InsertJournal(self.path)
        version = self.query("SELECT version()", "TSVRaw").body.decode().strip()
        self.capabilities = Capabilities(version=version)

    def query(
        self,
        sql: str,
        fmt: str = "JSONEachRow",
        params: Mapping[str, str] | None = None,
        settings: Mapping[str, str | int] | None = None,
    ) -> QueryResult:
        statement = sql + _settings_clause(settings) if settings else sql
        with self._lock:
            try:
                result = self._session.query(statement, fmt, params=dict(params) if params else None)
            except Exception as exc:
                raise _error(exc) from exc
        if result is None:  # DDL through query() returns nothing on some versions
            return QueryResult(b"")
        return QueryResult(
            body=result.bytes(),
            rows_read=result.rows_read(),
            bytes_read=result.bytes_read(),
            elapsed_s=result.elapsed(),
        )

    def command(self, sql: str, settings: Mapping[str, str | int] | None = None) -> None:
        self._tables.clear()  # DDL may add views, or replace a table (new data directory)
        self._command(sql, settings)

    def _command(self, sql: str, settings: Mapping[str, str | int] | None = None) -> None:
        # A trailing SETTINGS clause on DDL would be read as *table* settings,
        # so statement settings go in as session SETs first. They stay set in
        # the embedded session; only permissive-DDL flags are passed here.
        with self._lock:
            for key, value in (settings or {}).items():
                clause = _settings_clause({key: value}).removeprefix(" SETTINGS ")
                try:
                    self._session.query(f"SET {clause}", "TSVRaw")
                except Exception as exc:
                    raise _error(exc) from exc
        self.query(sql, "TSVRaw")

    def insert(
        self,
        table: str,
        data: bytes,
        fmt: str = "JSONEachRow",
        columns: tuple[str, ...] | None = None,
        settings: Mapping[str, str | int] | None = None,
    ) -> int:
        column_list = " (" + ", ".join(f"`{c}`" for c in columns) + ")" if columns else ""
        token = str((settings or {}).get("insert_deduplication_token", ""))
        # The streaming inserter swallows errors raised by dependent
        # materialized views (the landing block commits, the view gets
        # nothing, nothing is raised); the query path reports them.
        by_query, table_dir = self._table(table)
        if token:
            settings = {**(settings or {}), "insert_deduplication_token": self._journal.token_for(token)}
        else:
            table_dir = None  # only token'd inserts are replayed, so only they are journaled
        statement = f"INSERT INTO {table}{column_list}{_settings_clause(settings)}"
        with self._lock:
            if table_dir is not None:
                _journal_write(self._journal.begin, token, table_dir)
            try:
                if by_query:
                    result = self._session.query(f"{statement} FORMAT {fmt}\n" + data.decode("utf-8"), "TSVRaw")
                    written = int(result.rows_written()) if result is not None else 0
                else:
                    with self._session.send_insert(statement, fmt) as inserter:
                        inserter.append(data)
                        written = int(inserter.finish().rows_written)
            except Exception as exc:
                raise _error(exc) from exc
            finally:
                # Failed or not, the insert is over: nothing is left in flight.
                if table_dir is not None:
                    _journal_write(self._journal.done)
        return written

    def _table(self, table: str) -> tuple[bool, str | None]:
        """Whether materialized views read ``table``, and its data directory
        if it is a MergeTree (cached; DDL clears the cache)."""
        found = self._tables.get(table)
        if found is None:
            database, _, name = table.replace("`", "").partition(".")
            result = self.query(
                "SELECT length(dependencies_table) > 0, engine, data_paths[1] FROM system.tables "
                "WHERE database = {d:String} AND name = {t:String}",
                "TSVRaw",
                params={"d": database, "t": name},
            )
            views, engine, path = [*result.body.decode().rstrip("\n").split("\t"), "", "", ""][:3]
            found = self._tables[table] = (views == "1", path if engine.endswith("MergeTree") and path else None)
        return found

    def close(self) -> None:
        with self._lock:
            session, self._session = self._session, None
            if session is not None:
                session.close()
            self._journal.close()
