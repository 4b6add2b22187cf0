"""Settings: one frozen dataclass per section, layered defaults < file < env < flags.

Keys are ``section.key_with_unit`` (SPEC §0.1). A TOML file holds
``[section] key = value``; the environment overrides with
``BIRDHOUSE_<SECTION>__<KEY>`` (e.g. ``BIRDHOUSE_SERVER__PORT=7181``); command
line flags override everything. Unknown keys are errors, not silently ignored:
a typo in a limit must not leave the default in force unnoticed.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 7181
    data_dir: str = ".birdhouse"
    # The `host` claim of minted tokens (SPEC §7.1); Tinybird Local uses "local".
    region: str = "local"
    # Public base URL used in job_url / regions; derived from host:port when empty.
    public_url: str = ""
    shutdown_grace_s: float = 25.0
    log_level: str = "info"
    # text or json (one object per line, with the request id).
    log_format: str = "text"
    # One log line per request (off by default: a line per event request costs
    # a visible share of small requests; /metrics counts them either way).
    access_log: bool = False
    # If set, GET /metrics requires "Authorization: Bearer <metrics_token>".
    metrics_token: str = ""
    # Slow clients: headers must arrive within this (granian closes the
    # connection), and a request body within body_read_timeout_s (→ 408).
    header_read_timeout_ms: int = 10000
    body_read_timeout_s: float = 60.0
    http2_max_concurrent_streams: int = 200
    # Concurrent requests per worker before granian stops reading new ones.
    backpressure: int = 4096
    # Open client connections per node (0 = no limit). Past it a new HTTP/1.1
    # connection gets 503 + Retry-After and an HTTP/2 one GOAWAY. granian cannot
    # refuse connections, so the limit needs birdhouse.gate: a process on the
    # public address that splices bytes to granian in Python. That costs
    # throughput (docs/security.md), hence opt-in.
    max_connections: int = 0


@dataclass(frozen=True)
class StorageSettings:
    # Empty means embedded chDB under <data_dir>/chdb.
    dsn: str = ""
    catalog_database: str = "birdhouse"
    catalog_refresh_s: float = 2.0


@dataclass(frozen=True)
class AuthSettings:
    # Hex or plain secret; empty means generated at first start and kept in the data dir.
    token_secret: str = ""


@dataclass(frozen=True)
class LocalSettings:
    # GET /tokens hands out the admin tokens: Tinybird Local behaviour, never for `serve`.
    tokens_endpoint: bool = True
    default_workspace: str = "Tinybird_Local_Testing"
    user_email: str = "local@birdhouse.local"


@dataclass(frozen=True)
class CompatSettings:
    # classic: /v0/events auto-creates missing data sources; forward: 404 (SPEC D4).
    mode: str = "classic"


@dataclass(frozen=True)
class EventsSettings:
    max_request_bytes: int = 104857600
    max_decompressed_bytes: int = 1073741824
    # Comma-separated origins; "*" allows any (flock.js runs in browsers).
    cors_allow_origins: str = "*"
    retry_after_503_s: int = 1
    wait_timeout_ms: int = 10000
    expand_json_array_lines: bool = False
    # A longer NDJSON line is quarantined unparsed (its first bytes quoted).
    max_line_bytes: int = 67108864
    # JWTs with DATASOURCES:APPEND may send events (browser ingestion without a static token).
    accept_jwt: bool = False
    # Requests at least this large (or chunked) take one of a few slots per
    # (workspace, data source), so a flood of huge bodies cannot starve the rest.
    large_request_bytes: int = 16384
    slots_per_datasource: int = 2
    slot_wait_ms: int = 5000
    max_inflight_requests: int = 1024
    # Worker processes converting large bodies off the server's GIL (-1: one per core but one, up to 4; 0: none).
    conversion_processes: int = -1


@dataclass(frozen=True)
class WalSettings:
    # always: group-commit fdatasync before 202 (default); interval: a shared
    # fsync every interval_ms; off: dev only, 202 means "in the page cache".
    fsync: str = "always"
    interval_ms: int = 50
    max_bytes: int = 10737418240
    segment_max_bytes: int = 33554432
    # Test-only negative control for the crash harness: answer 202 first and
    # write the WAL 300 ms later, so a kill -9 loses acknowledged rows.
    unsafe_ack_before_write: bool = False


@dataclass(frozen=True)
class FlushSettings:
    interval_ms: int = 1000
    max_rows: int = 100000
    max_bytes: int = 33554432
    # A wait=true flush waits at most this long for as many waiters as joined the last one.
    wait_coalesce_ms: int = 20
    backend_down_deadline_s: float = 300.0
    retry_initial_ms: int = 100
    retry_max_ms: int = 30000


@dataclass(frozen=True)
class DedupSettings:
    idempotency_header: bool = True
    body_hash: bool = False
    window_s: int = 18000


@dataclass(frozen=True)
class InferenceSettings:
    # Auto-create samples the first 64 KiB (cut at a newline), doubling up to
    # 10 MiB until at least one column is inferred (SPEC §9.1).
    sample_initial_bytes: int = 65536
    sample_max_bytes: int = 10485760
    max_columns: int = 10000


@dataclass(frozen=True)
class LimitsSettings:
    # Requests/s per workspace (0 = unlimited: then no X-RateLimit headers).
    workspace_rps: float = 1000.0
    workspace_burst: float = 1000.0
    # Optional per data source bucket (Tinybird documents 100/s; off here).
    datasource_rps: float = 0.0
    datasource_burst: float = 0.0
    # Optional wire bytes/s per workspace, in MB/s (0 = off).
    workspace_mbps: float = 0.0
    max_datasources_per_workspace: int = 0
    # How long concurrent first requests wait for one of them to auto-create.
    autocreate_lock_ms: int = 10000


@dataclass(frozen=True)
class SqlSettings:
    max_execution_time_s: int = 30
    max_result_bytes: int = 104857600
    max_query_bytes: int = 262144


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    local: LocalSettings = field(default_factory=LocalSettings)
    compat: CompatSettings = field(default_factory=CompatSettings)
    events: EventsSettings = field(default_factory=EventsSettings)
    wal: WalSettings = field(default_factory=WalSettings)
    flush: FlushSettings = field(default_factory=FlushSettings)
    dedup: DedupSettings = field(default_factory=DedupSettings)
    inference: InferenceSettings = field(default_factory=InferenceSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    sql: SqlSettings = field(default_factory=SqlSettings)

    @property
    def data_path(self) -> Path:
        return Path(self.server.data_dir).resolve()

    @property
    def storage_dsn(self) -> str:
        return self.storage.dsn or f"chdb://{self.data_path / 'chdb'}"

    @property
    def base_url(self) -> str:
        if self.server.public_url:
            return self.server.public_url.rstrip("/")
        host = "127.0.0.1" if self.server.host in ("0.0.0.0", "::", "") else self.server.host  # noqa: S104
        return f"http://{host}:{self.server.port}"


class ConfigError(ValueError):
    """A setting has an unknown key or a value of the wrong type."""


def _coerce(value: Any, target: Any, key: str) -> Any:
    kind = target if isinstance(target, type) else type(target)
    if isinstance(value, str) and kind is not str:
        text = value.strip()
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"{key}: expected a boolean, got {value!r}")
        try:
            return kind(text)
        except ValueError:
            raise ConfigError(f"{key}: expected {kind.__name__}, got {value!r}") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {kind.__name__}, got {value!r}")
    return value


def _apply(settings: Settings, layer: Mapping[str, Mapping[str, Any]]) -> Settings:
    sections: dict[str, Any] = {}
    for section_name, values in layer.items():
        section = getattr(settings, section_name, None)
        if section is None or not dataclasses.is_dataclass(section):
            raise ConfigError(f"unknown settings section {section_name!r}")
        defaults = {f.name: getattr(section, f.name) for f in dataclasses.fields(section)}
        changes = {}
        for key, value in values.items():
            if key not in defaults:
                raise ConfigError(f"unknown setting {section_name}.{key}")
            changes[key] = _coerce(value, defaults[key], f"{section_name}.{key}")
        sections[section_name] = dataclasses.replace(section, **changes)  # type: ignore[type-var]
    return dataclasses.replace(settings, **sections)


def _env_layer(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    layer: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith("BIRDHOUSE_") or "__" not in name:
            continue
        section, _, key = name.removeprefix("BIRDHOUSE_").lower().partition("__")
        layer.setdefault(section, {})[key] = value
    return layer


def load_settings(
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build settings from the layers. ``overrides`` maps ``section.key`` to a
    value (None values are skipped, so unset CLI flags fall through)."""
    settings = Settings()
    if config_file:
        with open(config_file, "rb") as handle:
            settings = _apply(settings, tomllib.load(handle))
    settings = _apply(settings, _env_layer(os.environ if environ is None else environ))
    flag_layer: dict[str, dict[str, Any]] = {}
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        flag_layer.setdefault(section, {})[key] = value
    return _apply(settings, flag_layer)


def settings_to_dict(settings: Settings) -> dict[str, dict[str, Any]]:
    """Flatten to ``{section: {key: value}}`` (used to hand settings to a server worker)."""
    return {f.name: dataclasses.asdict(getattr(settings, f.name)) for f in dataclasses.fields(settings)}
