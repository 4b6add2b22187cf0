"""The server secret that signs tokens (SPEC §7.1 ``auth.token_secret``).

Generated at first start (32 random bytes) and kept in the data dir with
mode 0600; changing it invalidates every minted token, so it is never
regenerated while the file exists.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from birdhouse.catalog.models import SharedSecret
from birdhouse.catalog.store import CatalogStore

SECRET_FILE = "token_secret"  # noqa: S105 - a file name, not a secret


def load_or_create_secret(data_dir: Path, configured: str = "") -> bytes:
    if configured:
        return configured.encode()
    path = data_dir / SECRET_FILE
    if path.exists():
        return path.read_text().strip().encode()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    # O_EXCL: if two processes race on first start, exactly one secret wins.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip().encode()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return value.encode()


def shared_secret(store: CatalogStore) -> bytes:
    """The secret kept in a shared catalog (ClickHouse backend): the first
    node to start creates it; every node then reads the stored value back, so
    two nodes racing on first start still end up with the same secret."""
    current = [r for r in store.load() if isinstance(r, SharedSecret)]
    if not current:
        store.save(SharedSecret(id="token_secret", name="token_secret", value=secrets.token_hex(32)))
        current = [r for r in store.load() if isinstance(r, SharedSecret)]
    return current[0].value.encode()
