"""Repairing dead letters (SPEC §8.4): rows parked because the database
refused them for a reason a retry could not fix.

- A letter with ``failed_views`` (E21: the landing rows were stored, some
  materialized views missed them) is repaired by re-running **only those
  views** over its rows: the rows go into a throwaway ``Null`` copy of the
  landing table carrying a copy of each view, so the engine maps columns
  exactly as the real view does, and re-inserting into the landing table
  (which dedup would skip anyway) never happens.
- Any other letter is delivered again, landing and quarantine, with the same
  dedup tokens as the original attempt, so whatever had landed is not doubled.

A repaired letter moves to ``deadletter/replayed/``; a failed repair leaves it
in place and says why.
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from birdhouse.backends import Backend, BackendError
from birdhouse.catalog.catalog import Catalog
from birdhouse.catalog.datasources import table_ref
from birdhouse.catalog.models import DataSource, Workspace
from birdhouse.catalog.pipes import mv_statement, mv_table
from birdhouse.pipeline.deliver import deliver_segment
from birdhouse.pipeline.records import AcceptedBatch, decode_batch


class RepairFailed(Exception):
    """The letter could not be repaired; it stays where it is."""


def letters(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.msgpack")) if directory.exists() else []


def describe(path: Path) -> dict[str, Any]:
    document = msgspec.msgpack.decode(path.read_bytes())
    batches = [decode_batch(b) for b in document.get("batches", [])]
    return {
        "name": path.name,
        "error": document.get("error", ""),
        "failed_views": document.get("failed_views", []),
        "datasource_id": batches[0].datasource_id if batches else "",
        "requests": len(batches),
        "rows": sum(b.successful_rows for b in batches),
        "quarantined_rows": sum(b.quarantined_rows for b in batches),
    }


def repair(backend: Backend, catalog: Catalog, path: Path) -> dict[str, Any]:
    document = msgspec.msgpack.decode(path.read_bytes())
    payloads: list[bytes] = list(document.get("batches", []))
    batches = [decode_batch(p) for p in payloads]
    if not batches:
        raise RepairFailed("the letter holds no rows")
    workspace = catalog.workspaces.get(batches[0].workspace_id)
    datasource = catalog.datasources.get(batches[0].datasource_id)
    if workspace is None or datasource is None:
        raise RepairFailed(f"data source {batches[0].datasource_id} no longer exists")
    views = list(document.get("failed_views", []))
    if views:
        for view in views:
            _rerun_view(backend, catalog, workspace, datasource, view, batches)
    else:
        with tempfile.TemporaryDirectory() as scratch:
            delivery = deliver_segment(backend, catalog, payloads, Path(scratch))
        if delivery.failed:
            raise RepairFailed(next(iter(delivery.failed.values())).detail)
    done = path.parent / "replayed"
    done.mkdir(exist_ok=True)
    path.rename(done / path.name)
    return {**describe(done / path.name), "repaired": True}


def _rerun_view(
    backend: Backend,
    catalog: Catalog,
    workspace: Workspace,
    datasource: DataSource,
    view: str,
    batches: list[AcceptedBatch],
) -> None:
    found = [
        (pipe, index)
        for pipe in catalog.workspace_pipes(workspace.id)
        for index, node in enumerate(pipe.nodes)
        if mv_table(pipe.name, node.name) == view
    ]
    if not found:
        raise RepairFailed(f"materialized view {view} no longer exists")
    pipe, index = found[0]
    statement = mv_statement(catalog, workspace, pipe.name, pipe.nodes, index)[1]
    view_ref = table_ref(workspace, view)
    landing = table_ref(workspace, datasource.name)
    scratch = f"bh_repair_{secrets.token_hex(6)}"
    scratch_ref = table_ref(workspace, scratch)
    scratch_view = table_ref(workspace, f"{scratch}_mv")
    # The view's own statement, reading the scratch copy instead of the landing table.
    replay = statement.replace(f"MATERIALIZED VIEW {view_ref}", f"MATERIALIZED VIEW {scratch_view}", 1)
    head, sep, select = replay.partition(" AS ")
    replay = head + sep + select.replace(landing, scratch_ref)
    rows = b"".join(b.rows for b in batches if b.successful_rows)
    try:
        backend.command(f"CREATE TABLE {scratch_ref} AS {landing} ENGINE = Null")
        backend.command(replay)
        if rows:
            backend.insert(scratch_ref, rows, "JSONEachRow", columns=batches[0].columns)
    except BackendError as exc:
        raise RepairFailed(f"{view}: {exc.message}") from None
    finally:
        for ref in (scratch_view, scratch_ref):
            with contextlib.suppress(BackendError):  # best effort: the scratch names are unique
                backend.command(f"DROP TABLE IF EXISTS {ref}")
