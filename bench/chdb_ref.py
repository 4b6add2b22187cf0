"""Reference: chDB's bulk insert of the same rows, in its own process (one chDB engine per process).

``python -m bench.chdb_ref SPEC.json OUT.json``: creates the shape's table in a fresh chDB directory and
inserts the given NDJSON bodies, concatenated into ``batch_rows``-row inserts (what a flusher can do at
best), until ``rows`` rows or ``max_s`` seconds. Prints rows/s of the inserts alone.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def run(spec: dict[str, Any]) -> dict[str, Any]:
    import chdb.session

    session_type: Any = chdb.session.Session  # chDB ships no type hints

    bodies = [Path(p).read_bytes() for p in spec["body_files"]]
    rows_per_body = int(spec["rows_per_body"])
    per_batch = max(1, int(spec["batch_rows"]) // rows_per_body)
    batches = [b"".join(bodies[(i + j) % len(bodies)] for j in range(per_batch)) for i in range(len(bodies))]
    session = session_type(spec["path"])
    try:
        session.query(f"CREATE TABLE t ({spec['columns_sql']}) ENGINE = MergeTree ORDER BY timestamp")
        rows = 0
        i = 0
        t0 = time.perf_counter()
        while rows < int(spec["rows"]) and time.perf_counter() - t0 < float(spec["max_s"]):
            with session.send_insert("INSERT INTO t", "JSONEachRow") as inserter:
                inserter.append(batches[i % len(batches)])
                rows += int(inserter.finish().rows_written)
            i += 1
        elapsed = time.perf_counter() - t0
        stored = int(str(session.query("SELECT count() FROM t", "CSV")).strip())
    finally:
        session.close()
    return {"rows": rows, "stored": stored, "elapsed_s": elapsed, "rows_per_s": rows / elapsed, "inserts": i}


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    Path(sys.argv[2]).write_text(json.dumps(run(spec)))


if __name__ == "__main__":
    main()
