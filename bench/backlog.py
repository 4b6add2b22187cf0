"""``python -m bench.backlog DATA_DIR NAME SHAPE ROWS``: put ROWS rows for data source NAME into the WAL of a
*stopped* birdhouse, as the server would have accepted them, and deliver none of them.

This is the drain scenario's starting point, "rows waiting in the WAL" (after a backend outage or a crash
under load). It runs the server's own acceptance code on the suite's 1,000-event bodies: the data source's
compiled converter, one WAL record per body, appended and fsync'd (``Ingestor.accept``). The flusher is never
started, so every row stays in the WAL until the next ``birdhouse local`` on DATA_DIR delivers it.

Settings come from the environment (``BIRDHOUSE_*``), like the server's. Prints one JSON line: rows, bodies,
seconds, WAL bytes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from bench import events
from bench.scenarios import Config
from birdhouse.config import load_settings
from birdhouse.ids import new_request_id
from birdhouse.runtime import open_runtime


def fill(data_dir: Path, name: str, shape: str, rows: int) -> dict[str, float]:
    settings = load_settings(environ={**os.environ, "BIRDHOUSE_SERVER__DATA_DIR": str(data_dir)})
    # The suite's own body size and count (its defaults), so the backlog is what a batched load would leave.
    bodies = events.bodies(shape, Config.batch_rows, Config.distinct_bodies)
    started = time.perf_counter()
    runtime = open_runtime(settings, local=True)
    try:
        workspace = runtime.default_workspace()
        if workspace is None:
            raise SystemExit(f"{data_dir} has no default workspace: start birdhouse on it once first")
        datasource = runtime.catalog.find_datasource(workspace.id, name)
        if datasource is None:
            raise SystemExit(f"data source {name!r} does not exist in {data_dir}")
        written = count = 0
        while written < rows:
            converted = runtime.ingestor.convert(datasource, bodies[count % len(bodies)], False)
            if converted.quarantined_rows:
                raise SystemExit(f"{converted.quarantined_rows} rows of a {shape} body do not fit {name}")
            runtime.ingestor.accept(workspace, datasource, converted, new_request_id())
            written += converted.successful_rows
            count += 1
        wal_bytes = runtime.wal.total_bytes
    finally:
        runtime.close()
    return {"rows": written, "bodies": count, "seconds": time.perf_counter() - started, "wal_bytes": wal_bytes}


def main() -> None:
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    data_dir, name, shape, rows = sys.argv[1:]
    print(json.dumps(fill(Path(data_dir), name, shape, int(rows))))


if __name__ == "__main__":
    main()
