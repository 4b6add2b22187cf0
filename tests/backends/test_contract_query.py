"""Contract: statements, query parameters, settings and errors, on every backend."""

from __future__ import annotations

import json
import re

import pytest

from birdhouse.backends import BackendError
from tests.backends.conftest import Target


def test_capabilities_name_the_engine_version(target: Target) -> None:
    assert re.match(r"\d+\.\d+", target.caps.version)


def test_query_returns_the_requested_format(target: Target) -> None:
    result = target.backend.query("SELECT 1 AS a, 'x' AS b", "JSONEachRow")
    assert json.loads(result.body) == {"a": 1, "b": "x"}
    assert target.backend.query("SELECT 1 AS a, 'x' AS b", "TSV").body == b"1\tx\n"
    assert target.backend.query("SELECT 1 AS a, 'x' AS b", "CSVWithNames").body == b'"a","b"\n1,"x"\n'


def test_64_bit_integers_are_json_numbers_unless_asked(target: Target) -> None:
    # The catalog decodes UInt64 columns as numbers; both engines must agree.
    sql = "SELECT toUInt64(18446744073709551615) AS u, toInt64(-5) AS i"
    assert json.loads(target.backend.query(sql).body) == {"u": 18446744073709551615, "i": -5}
    quoted = target.backend.query(sql, settings={"output_format_json_quote_64bit_integers": 1})
    assert json.loads(quoted.body) == {"u": "18446744073709551615", "i": "-5"}


PARAM_VALUES = ["plain", "it's", 'a "quoted" \\ backslash', "héllo \U0001f426", "", "{x:String}"]


@pytest.mark.parametrize("value", PARAM_VALUES)
def test_query_params_bind_values_exactly(target: Target, value: str) -> None:
    target.gap(not target.caps.query_params, "no query parameters ({name:Type}) on this server")
    result = target.backend.query(
        "SELECT {s:String} AS s, {n:UInt32} + 1 AS n, {a:Array(String)} AS a",
        params={"s": value, "n": "41", "a": "['x','y']"},
    )
    assert json.loads(result.body) == {"s": value, "n": 42, "a": ["x", "y"]}


@pytest.mark.parametrize("value", ["tab\there", "line\nbreak"])
def test_query_params_bind_control_characters(target: Target, value: str) -> None:
    target.gap(not target.caps.query_params, "no query parameters ({name:Type}) on this server")
    # chDB 4.4 hands parameter values to the engine unescaped; the engine reads them
    # TSV-escaped and stops at the raw tab/newline (BAD_QUERY_PARAMETER). Pipe
    # parameters are user values, so this matters.
    target.gap(target.kind == "chdb", "chDB does not escape tab/newline in query parameter values")
    assert json.loads(target.backend.query("SELECT {s:String} AS s", params={"s": value}).body) == {"s": value}


def test_query_params_refused_clearly_where_unsupported(target: Target) -> None:
    if target.caps.query_params:
        assert json.loads(target.backend.query("SELECT {p:UInt8} AS p", params={"p": "3"}).body) == {"p": 3}
        return
    with pytest.raises(BackendError, match="query parameters"):
        target.backend.query("SELECT {p:UInt8} AS p", params={"p": "3"})


def test_settings_apply_to_one_query(target: Target) -> None:
    sql = "SELECT value FROM system.settings WHERE name = 'max_block_size'"
    assert target.backend.query(sql, "TSVRaw", settings={"max_block_size": 1234}).body == b"1234\n"
    assert target.backend.query(sql, "TSVRaw").body != b"1234\n"


def test_sql_api_limits_are_enforced(target: Target) -> None:
    # The settings birdhouse.query.execute sends with every /v0/sql query.
    limits: dict[str, str | int] = {
        "readonly": 1,
        "max_execution_time": 10,
        "max_result_bytes": 1000,
        "result_overflow_mode": "throw",
    }
    with pytest.raises(BackendError) as excinfo:
        target.backend.query("SELECT number FROM system.numbers LIMIT 100000", "TSV", settings=limits)
    assert excinfo.value.code == 396  # TOO_MANY_ROWS_OR_BYTES
    with pytest.raises(BackendError) as excinfo:
        target.backend.query(f"CREATE TABLE {target.table('w')} (a UInt8) ENGINE = Memory", settings=limits)
    assert excinfo.value.code == 164  # READONLY
    assert target.backend.query("SELECT 1", "TSV", settings=limits).body == b"1\n"


def test_unknown_table_error_has_code_60(target: Target) -> None:
    with pytest.raises(BackendError) as excinfo:
        target.backend.query(f"SELECT * FROM {target.table('missing')}")
    assert excinfo.value.code == 60
    assert excinfo.value.message.startswith("Code: 60. DB::Exception: ")
    assert "version" not in excinfo.value.message


def test_syntax_error_has_code_62(target: Target) -> None:
    with pytest.raises(BackendError) as excinfo:
        target.backend.query("SELEC 1")
    assert excinfo.value.code == 62
    assert "Syntax error" in excinfo.value.message


def test_error_after_the_first_block_is_raised(target: Target) -> None:
    # Over HTTP the status line (200) has gone out with the first blocks; the
    # exception arrives as the last line of the body and must not pass as data.
    with pytest.raises(BackendError) as excinfo:
        target.backend.query(
            "SELECT throwIf(number = 3000000) FROM system.numbers LIMIT 4000000",
            "TSV",
            settings={"max_block_size": 1000, "send_progress_in_http_headers": 0},
        )
    assert excinfo.value.code == 395


def test_explain_ast_parses_without_running(target: Target) -> None:
    target.gap(not target.caps.explain_ast, "no EXPLAIN AST (the /v0/sql guard parses with it)")
    body = target.backend.query("EXPLAIN AST SELECT a FROM t WHERE b = 1", "TSVRaw").body.decode()
    assert "SelectWithUnionQuery" in body and "Identifier t" in body
    with pytest.raises(BackendError) as excinfo:
        target.backend.query("EXPLAIN AST SELEC 1", "TSVRaw")
    assert excinfo.value.code == 62
