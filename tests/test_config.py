"""Settings layering and the configuration reference."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from birdhouse.config import ConfigError, Settings, load_settings

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def all_keys() -> list[str]:
    settings = Settings()
    return [
        f"{section.name}.{field.name}"
        for section in dataclasses.fields(settings)
        for field in dataclasses.fields(getattr(settings, section.name))
    ]


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text()
    missing = [key for key in all_keys() if f"`{key}`" not in text]
    assert missing == []


def test_layers_defaults_file_env_flags(tmp_path: Path) -> None:
    config = tmp_path / "birdhouse.toml"
    config.write_text('[server]\nport = 8000\nregion = "eu"\n[events]\nwait_timeout_ms = 5\n')
    settings = load_settings(
        config,
        environ={"BIRDHOUSE_SERVER__PORT": "9000", "BIRDHOUSE_WAL__FSYNC": "interval", "UNRELATED": "x"},
        overrides={"server.port": 9100, "server.host": None},
    )
    assert settings.server.port == 9100  # flag beats env beats file
    assert settings.server.region == "eu"  # file
    assert settings.wal.fsync == "interval"  # env
    assert settings.events.wait_timeout_ms == 5
    assert settings.server.host == "127.0.0.1"  # an unset flag falls through


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"BIRDHOUSE_SERVER__PROT": "1"}, "unknown setting server.prot"),
        ({"BIRDHOUSE_NOPE__X": "1"}, "unknown settings section"),
        ({"BIRDHOUSE_SERVER__PORT": "many"}, "server.port: expected int"),
        ({"BIRDHOUSE_DEDUP__BODY_HASH": "maybe"}, "expected a boolean"),
    ],
)
def test_bad_settings_are_errors(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=environ)
