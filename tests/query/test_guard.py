"""The /v0/sql guard against the real engine (chDB).

Workspace ``ws_a`` holds ``events``, ``events_quarantine`` and ``secret`` (which
the token may not read); ``ws_b.events`` and ``default.events`` are decoys that
must never be reachable from ``ws_a``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from birdhouse.backends import Backend, BackendError
from birdhouse.query.guard import FORMATS, GuardedQuery, SqlRefused, guard_query
from birdhouse.query.policy import NOT_SUPPORTED

KNOWN = frozenset({"events", "events_quarantine", "secret"})


@dataclass
class Workspace:
    backend: Backend
    database: str = "ws_a"
    readable_names: frozenset[str] = field(default_factory=lambda: frozenset({"events", "events_quarantine"}))

    def explain(self, text: str) -> str:
        return self.backend.query("EXPLAIN AST " + text, "TSVRaw").body.decode()

    def guard(self, sql: str) -> GuardedQuery:
        return guard_query(
            sql,
            database=self.database,
            known_tables=KNOWN,
            readable=lambda name: name in self.readable_names,
            explain_ast=self.explain,
        )

    def run(self, guarded: GuardedQuery) -> list[list[Any]]:
        body = self.backend.query(guarded.sql, "JSONCompactEachRow").body.decode()
        return [json.loads(line) for line in body.split("\n") if line]

    def refused(self, sql: str) -> SqlRefused:
        with pytest.raises(SqlRefused) as info:
            self.guard(sql)
        return info.value

    def table_exists(self, database: str, name: str) -> bool:
        sql = f"SELECT count() FROM system.tables WHERE database = '{database}' AND name = '{name}'"
        return self.backend.query(sql, "TSVRaw").body.strip() == b"1"


@pytest.fixture
def ws(backend: Backend) -> Workspace:
    for statement in (
        "CREATE DATABASE ws_a",
        "CREATE DATABASE ws_b",
        "CREATE TABLE ws_a.events (a Int32, s String) ENGINE = MergeTree ORDER BY a",
        "CREATE TABLE ws_a.events_quarantine (a Int32) ENGINE = MergeTree ORDER BY a",
        "CREATE TABLE ws_a.secret (a Int32, s String) ENGINE = MergeTree ORDER BY a",
        "CREATE TABLE ws_b.events (a Int32, s String) ENGINE = MergeTree ORDER BY a",
        "CREATE TABLE default.events (a Int32, s String) ENGINE = MergeTree ORDER BY a",
        "CREATE TABLE default.c (a Int32) ENGINE = MergeTree ORDER BY a",
        "INSERT INTO ws_a.events VALUES (1, 'x'), (2, 'y'), (3, 'z')",
        "INSERT INTO ws_a.events_quarantine VALUES (2)",
        "INSERT INTO ws_a.secret VALUES (42, 'hidden')",
        "INSERT INTO ws_b.events VALUES (99, 'other workspace')",
        "INSERT INTO default.events VALUES (77, 'default database')",
        "INSERT INTO default.c VALUES (55)",
    ):
        backend.command(statement)
    return Workspace(backend)


# --- allowed: the rewritten SQL runs and returns the right rows -------------------------------------

ALLOWED: list[tuple[str, list[list[Any]]]] = [
    ("SELECT a, s FROM events ORDER BY a", [[1, "x"], [2, "y"], [3, "z"]]),
    ("select a from events where a > 1 order by a;", [[2], [3]]),
    ("SELECT a FROM events ORDER BY a;;", [[1], [2], [3]]),
    ("SELECT e.a FROM events AS e WHERE e.a = 2", [[2]]),
    ("SELECT e.a FROM events e WHERE e.s = 'z'", [[3]]),
    ("SELECT events.a FROM events WHERE events.a = 3", [[3]]),
    ("SELECT a FROM `events` WHERE a = 1", [[1]]),
    ('SELECT a FROM "events" WHERE a = 1', [[1]]),
    ("SELECT a FROM \u201cevents\u201d WHERE a = 1", [[1]]),
    ("FROM events SELECT a WHERE a = 3", [[3]]),
    ("(SELECT a FROM events WHERE a = 1)", [[1]]),
    ("WITH big AS (SELECT a FROM events WHERE a > 1) SELECT a FROM big ORDER BY a", [[2], [3]]),
    ("WITH big AS (SELECT a FROM events WHERE a > 1) SELECT big.a FROM big WHERE big.a = 3", [[3]]),
    ("WITH b AS (SELECT a FROM events WHERE a > 2) SELECT a FROM events WHERE a IN b", [[3]]),
    (
        "WITH x AS (SELECT 1 AS a), y AS (SELECT a + 1 AS a FROM x) SELECT y.a FROM y AS y",
        [[2]],
    ),
    (
        "WITH RECURSIVE t AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM t WHERE n < 3) SELECT n FROM t",
        [[1], [2], [3]],
    ),
    ("WITH 2 AS two SELECT a FROM events WHERE a = two", [[2]]),
    ("WITH secret AS (SELECT 7 AS a) SELECT a FROM secret", [[7]]),
    (
        "SELECT n FROM (SELECT 1 AS k, toInt32(count()) AS n FROM events "
        "UNION ALL SELECT 2, toInt32(count()) FROM events_quarantine) ORDER BY k",
        [[3], [1]],
    ),
    ("SELECT a FROM events WHERE a IN (SELECT a FROM events_quarantine)", [[2]]),
    ("SELECT a FROM events WHERE a IN events_quarantine", [[2]]),
    ("SELECT a FROM events WHERE a NOT IN events_quarantine ORDER BY a", [[1], [3]]),
    ("SELECT a FROM events WHERE a GLOBAL IN events_quarantine", [[2]]),
    ("SELECT e.a, q.a FROM events e JOIN events_quarantine q ON e.a = q.a", [[2, 2]]),
    ("SELECT e.a FROM events e, events_quarantine q WHERE e.a = q.a", [[2]]),
    ("SELECT a FROM events LEFT JOIN events_quarantine USING a ORDER BY a", [[1], [2], [3]]),
    ("SELECT sub.a FROM (SELECT a FROM events) AS sub WHERE sub.a = 1", [[1]]),
    ("SELECT (SELECT max(a) FROM events)", [[3]]),
    ("SELECT a FROM events WHERE EXISTS (SELECT 1 FROM events_quarantine) ORDER BY a LIMIT 1", [[1]]),
    (
        "SELECT a, toInt32(row_number() OVER (ORDER BY a DESC)) FROM events ORDER BY a",
        [[1, 3], [2, 2], [3, 1]],
    ),
    ("SELECT toInt32(number) FROM numbers(2)", [[0], [1]]),
    ("SELECT a, x FROM events ARRAY JOIN [10] AS x WHERE a = 1", [[1, 10]]),
    ("/* a comment */ SELECT 'a;b' -- another; one\n", [["a;b"]]),
    ("/* nested /* */ ; DROP TABLE events */ SELECT 1", [[1]]),
    ("# shell-style comment\nSELECT 2", [[2]]),
    ("SELECT \u2018x;y\u2019, $$p'q;$$, 'it''s', 'back\\\\slash'", [["x;y", "p'q;", "it's", "back\\slash"]]),
    ("SELECT 'tab\\there' = concat('tab', char(9), 'here')", [[1]]),
]


@pytest.mark.parametrize(("sql", "rows"), ALLOWED)
def test_allowed_queries_run_and_return_the_workspace_rows(ws: Workspace, sql: str, rows: list[list[Any]]) -> None:
    guarded = ws.guard(sql)
    assert ws.run(guarded) == rows
    assert ";" not in guarded.sql
    assert guarded.tables <= {"events", "events_quarantine"}


def test_rewritten_sql_is_qualified_and_format_stripped(ws: Workspace) -> None:
    guarded = ws.guard("SELECT a FROM events e JOIN events_quarantine USING a FORMAT CSVWithNames;")
    assert guarded.sql == "SELECT a FROM `ws_a`.`events` e JOIN `ws_a`.`events_quarantine` USING a"
    assert guarded.format == "CSVWithNames"
    assert guarded.tables == frozenset({"events", "events_quarantine"})


def test_default_format_is_json_and_names_are_case_insensitive(ws: Workspace) -> None:
    assert ws.guard("SELECT 1").format == "JSON"
    assert ws.guard("SELECT 1 FORMAT jsoneachrow").format == "JSONEachRow"
    assert ws.guard("SELECT 1 format `TSVWithNames`").format == "TSVWithNames"
    assert all(ws.guard(f"SELECT 1 FORMAT {name}").format == name for name in FORMATS)


def test_describe(ws: Workspace) -> None:
    for sql in ("DESCRIBE TABLE events", "DESC events", "describe events FORMAT JSON"):
        guarded = ws.guard(sql)
        assert guarded.tables == frozenset({"events"})
        assert [row[:2] for row in ws.run(guarded)] == [["a", "Int32"], ["s", "String"]]


def test_cte_tables_are_not_reported_as_reads(ws: Workspace) -> None:
    guarded = ws.guard("WITH c AS (SELECT 1 AS a) SELECT a FROM c")
    assert guarded.tables == frozenset()
    assert "`__cte:c`" in guarded.sql


def test_isolation_from_other_databases(ws: Workspace) -> None:
    rows = ws.run(ws.guard("SELECT a FROM events ORDER BY a"))
    assert rows == [[1], [2], [3]]  # never ws_b's 99 nor default's 77, whatever the session database is
    other = Workspace(ws.backend, database="ws_b", readable_names=frozenset({"events"}))
    assert other.run(other.guard("SELECT a FROM events")) == [[99]]


def test_a_cte_used_outside_its_scope_never_falls_back_to_a_real_table(ws: Workspace) -> None:
    # `c` outside the subquery would resolve to the session database's table `c` (default.c = 55);
    # renamed, it names a table that cannot exist.
    guarded = ws.guard("SELECT * FROM (WITH c AS (SELECT 1 AS a) SELECT a FROM c) AS s, c")
    with pytest.raises(BackendError) as info:
        ws.run(guarded)
    assert "__cte:c" in info.value.message


# --- refused ---------------------------------------------------------------------------------------

TABLE_FUNCTIONS = [
    "SELECT * FROM file('/etc/passwd')",
    "SELECT * FROM file('/etc/passwd', 'LineAsString') AS f",
    "SELECT * FROM url('http://127.0.0.1:1/x', CSV)",
    "SELECT * FROM remote('127.0.0.1', system.one)",
    "SELECT * FROM remoteSecure('127.0.0.1', system.one)",
    "SELECT * FROM cluster('default', system.one)",
    "SELECT * FROM s3('http://127.0.0.1:1/b/x.csv')",
    "SELECT * FROM hdfs('hdfs://x/y', CSV, 'a Int8')",
    "SELECT * FROM mysql('h:3306', 'db', 't', 'u', 'p')",
    "SELECT * FROM postgresql('h:5432', 'db', 't', 'u', 'p')",
    "SELECT * FROM jdbc('x', 'y')",
    "SELECT * FROM odbc('x', 'y')",
    "SELECT * FROM input('a Int32')",
    "SELECT * FROM executable('x.sh', TSV, 'a Int32')",
    "SELECT * FROM dictionary('d')",
    "SELECT * FROM merge('ws_b', '.*')",
    "SELECT * FROM view(SELECT * FROM ws_b.events)",
    "SELECT * FROM generateRandom('a Int32') LIMIT 1",
    "SELECT * FROM (EXPLAIN SELECT 1)",
    "SELECT * FROM events JOIN file('/etc/passwd') AS f ON 1",
    "SELECT * FROM (SELECT * FROM url('http://127.0.0.1:1/x', CSV))",
    "DESCRIBE file('/etc/passwd')",
    "SELECT * FROM FILE('/etc/passwd')",
]


@pytest.mark.parametrize("sql", TABLE_FUNCTIONS)
def test_table_functions_are_refused(ws: Workspace, sql: str) -> None:
    refusal = ws.refused(sql)
    assert refusal.status == 400
    assert refusal.message.startswith(NOT_SUPPORTED)
    assert "table function" in refusal.message


OTHER_DATABASES = [
    "SELECT * FROM system.tables",
    "SELECT * FROM system.one",
    "SELECT 1 IN system.one",
    "SELECT 1 WHERE 0 NOT IN system.one",
    "SELECT * FROM ws_b.events",
    "SELECT * FROM `ws_b`.`events`",
    'SELECT * FROM "ws_b"."events"',
    "SELECT * FROM `ws_b.events`",
    "SELECT * FROM ws_a.events",
    "SELECT * FROM default.events",
    "SELECT * FROM birdhouse.tokens",
    "SELECT * FROM INFORMATION_SCHEMA.TABLES",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM events JOIN ws_b.events USING a",
    "SELECT a FROM events WHERE a IN (SELECT a FROM ws_b.events)",
    "SELECT (SELECT count() FROM system.tables)",
    "SELECT * FROM (SELECT * FROM system.tables)",
    "WITH system.tables AS x SELECT * FROM x",
    "WITH x AS (SELECT * FROM system.tables) SELECT * FROM x",
    "SELECT system.one.dummy",
    "DESCRIBE TABLE system.tables",
]


@pytest.mark.parametrize("sql", OTHER_DATABASES)
def test_other_databases_are_refused(ws: Workspace, sql: str) -> None:
    refusal = ws.refused(sql)
    assert refusal.status == 400
    assert refusal.message.startswith(NOT_SUPPORTED)
    assert "another database" in refusal.message


NOT_READS = [
    "INSERT INTO events VALUES (1, 'a')",
    "INSERT INTO events SELECT * FROM ws_b.events",
    "ALTER TABLE events DELETE WHERE 1",
    "CREATE TABLE x (a Int8) ENGINE = Memory",
    "DROP TABLE events",
    "TRUNCATE TABLE events",
    "SYSTEM FLUSH LOGS",
    "SET readonly = 0",
    "KILL QUERY WHERE 1",
    "OPTIMIZE TABLE events",
    "ATTACH TABLE x",
    "DETACH TABLE events",
    "RENAME TABLE events TO x",
    "GRANT SELECT ON *.* TO x",
    "EXPLAIN SELECT 1",
    "EXPLAIN AST SELECT 1",
    "SHOW TABLES",
    "EXISTS TABLE events",
    "USE ws_b",
    "SELEC 1",
    "  -- only a comment\n  insert into events values (1, 'a')",
]


@pytest.mark.parametrize("sql", NOT_READS)
def test_statements_that_are_not_reads_are_refused(ws: Workspace, sql: str) -> None:
    refusal = ws.refused(sql)
    assert (refusal.status, refusal.message) == (400, NOT_SUPPORTED)


MULTIPLE = [
    "SELECT 1; DROP TABLE events",
    "SELECT 1; SELECT 2",
    "SELECT 1 /* */; DROP TABLE events",
    "SELECT 1 -- x\n; DROP TABLE events",
    "SELECT 'x' /* ' */ ; DROP TABLE events",
    "SELECT `a;` ; DROP TABLE events",
    "SELECT $a b$ ; DROP TABLE events; SELECT $a b$",
]


@pytest.mark.parametrize("sql", MULTIPLE)
def test_more_than_one_statement_is_refused_and_nothing_runs(ws: Workspace, sql: str) -> None:
    refusal = ws.refused(sql)
    assert refusal.status == 400
    assert refusal.message.startswith(NOT_SUPPORTED)
    assert ws.table_exists("ws_a", "events")


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("SELECT 1 SETTINGS readonly = 0", "SETTINGS"),
        ("SELECT * FROM events SETTINGS max_threads = 1", "SETTINGS"),
        ("SELECT 1 FORMAT JSON SETTINGS max_execution_time = 0", "SETTINGS"),
        ("SELECT * FROM (SELECT 1 SETTINGS max_execution_time = 0)", "SETTINGS"),
        ("DESCRIBE events SETTINGS describe_compact_output = 1", "SETTINGS"),
        ("SELECT * FROM events INTO OUTFILE '/tmp/x'", "INTO OUTFILE"),
        ("SELECT * FROM events INTO OUTFILE '/tmp/x' FORMAT CSV", "INTO OUTFILE"),
        ("SELECT dictGet('d', 'a', toUInt64(1))", "'dictGet'"),
        ("SELECT dictHas('d', toUInt64(1))", "'dictHas'"),
        ("SELECT dictGetString('d', 'a', toUInt64(1))", "'dictGetString'"),
        ("SELECT joinGet('ws_b.x', 'a', 1)", "'joinGet'"),
        ("SELECT joinGetOrNull(x, 'a', 1)", "'joinGetOrNull'"),
        ("SELECT hasColumnInTable('system', 'one', 'dummy')", "'hasColumnInTable'"),
        ("SELECT getSetting('readonly')", "'getSetting'"),
        ("SELECT getServerSetting('path')", "'getServerSetting'"),
        ("SELECT file('/etc/passwd')", "'file'"),
        ("SELECT FILE('/etc/passwd')", "'FILE'"),
        ("SELECT 1 IN file('/etc/passwd')", "'file'"),
        ("SELECT a FROM events WHERE s = file('/etc/passwd')", "'file'"),
        ("SELECT __getScalar('x')", "'__getScalar'"),
        ("SELECT aiGenerate('hello')", "'aiGenerate'"),
        ("SELECT sleep(3)", "'sleep'"),
    ],
)
def test_settings_outfile_and_object_reaching_functions_are_refused(ws: Workspace, sql: str, fragment: str) -> None:
    refusal = ws.refused(sql)
    assert refusal.status == 400
    assert refusal.message.startswith(NOT_SUPPORTED)
    assert fragment in refusal.message


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM secret",
        "SELECT * FROM events JOIN secret USING a",
        "SELECT a FROM events WHERE a IN secret",
        "SELECT a FROM events WHERE a IN (SELECT a FROM secret)",
        "SELECT (SELECT count() FROM secret)",
        "WITH c AS (SELECT * FROM secret) SELECT * FROM c",
        "DESCRIBE secret",
        "SELECT * FROM `secret`",
    ],
)
def test_unreadable_table_is_403(ws: Workspace, sql: str) -> None:
    refusal = ws.refused(sql)
    assert refusal.status == 403
    assert refusal.message.startswith("Not enough permissions to read 'secret'")


def test_readable_secret_is_allowed(ws: Workspace) -> None:
    ws.readable_names = KNOWN
    guarded = ws.guard("SELECT a, s FROM secret")
    assert ws.run(guarded) == [[42, "hidden"]]
    assert guarded.tables == frozenset({"secret"})


@pytest.mark.parametrize(
    ("sql", "name"),
    [
        ("SELECT * FROM nope", "nope"),
        ("SELECT * FROM Events", "Events"),  # identifiers are case-sensitive
        ("SELECT 1 IN nope", "nope"),
        ("SELECT * FROM events JOIN `no pe` USING a", "no pe"),
        ("SELECT * FROM events AS e WHERE a IN e", "e"),
    ],
)
def test_unknown_table_is_400_naming_it(ws: Workspace, sql: str, name: str) -> None:
    refusal = ws.refused(sql)
    assert (refusal.status, refusal.message) == (400, f"Resource '{name}' not found")


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("", "empty"),
        (" -- nothing\n ;", "empty"),
        ("SELECT FROM WHERE", "Syntax error"),
        ("SELECT 'open", "Syntax error"),
        ("SELECT 1 \\G", "Syntax error"),
        ("SELECT 1 FORMAT XML", "Unsupported output format 'XML'"),
        ("SELECT 1\x00", "NUL"),
        ("SELECT 1 AS `a\nTableIdentifier x`", "not allowed"),
        ("SELECT 1 AS `a (alias b)`", "not allowed"),
        ("SELECT 1 AS `a\\x41`", "Escape sequences"),
        ("SELECT 'a\\;b'", "escape"),
        ("SELECT {p:String}", "Substitution"),
        ("WITH `odd name` AS (SELECT 1) SELECT 1", "CTE names"),
    ],
)
def test_invalid_queries_are_400(ws: Workspace, sql: str, fragment: str) -> None:
    refusal = ws.refused(sql)
    assert refusal.status == 400
    assert fragment in refusal.message


def test_explain_failures_other_than_sql_errors_propagate(ws: Workspace) -> None:
    def down(text: str) -> str:
        raise RuntimeError("backend down")

    with pytest.raises(RuntimeError):
        guard_query("SELECT 1", database="ws_a", known_tables=KNOWN, readable=bool, explain_ast=down)


def test_unverifiable_explain_output_is_refused() -> None:
    with pytest.raises(SqlRefused, match="could not be verified"):
        guard_query("SELECT 1", database="ws_a", known_tables=KNOWN, readable=bool, explain_ast=lambda _: "A\nB")


def test_invalid_database_name_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="invalid database"):
        guard_query("SELECT 1", database="a.b", known_tables=KNOWN, readable=bool, explain_ast=str)


# --- fuzz: nothing but SqlRefused, and nothing ever executes ---------------------------------------

FRAGMENTS = [
    "SELECT ", "FROM ", "events", "secret", "nope", "system.one", "ws_b.events", " ", "\n", "'", '"', "`",
    "\\", ";", "--", "/*", "*/", "# ", "#!", "//", "$$", "$a$", "\u2018", "\u2019", "\u201c", "\u201d", "(",
    ")", ",", "1", " IN ", "WITH ", " AS ", " FORMAT ", "JSON", " SETTINGS ", "x=1", "DROP TABLE ws_a.events",
    "CREATE TABLE ws_a.pwned (a Int8) ENGINE = Memory", " INTO OUTFILE '/tmp/bh'", "file('/etc/passwd')",
    "DESCRIBE ", " UNION ALL ", "\\G", "\x00", "c", " JOIN ", ".",
]  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=14).map("".join) | st.text(max_size=60))
def test_fuzz_only_sql_refused_and_no_side_effects(ws: Workspace, sql: str) -> None:
    outcome: GuardedQuery | SqlRefused
    try:
        outcome = ws.guard(sql)
    except SqlRefused as exc:
        outcome = exc
    if isinstance(outcome, SqlRefused):
        event(f"refused {outcome.status}")
        assert outcome.status in (400, 403)
        assert outcome.message
    else:
        guarded = outcome
        event("accepted")
        assert ";" not in guarded.sql
        assert guarded.tables <= {"events", "events_quarantine"}
        assert guarded.format in FORMATS
    assert ws.table_exists("ws_a", "events")
    assert not ws.table_exists("ws_a", "pwned")


def _ch_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\x00", "\\0") + "'"


_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
_LITERALS = st.one_of(
    _TEXT.map(lambda t: (t, _ch_quote(t))),
    _TEXT.filter(lambda t: "$$" not in t and "\x00" not in t and not t.endswith("$")).map(lambda t: (t, f"$${t}$$")),
    _TEXT.filter(lambda t: "\u2019" not in t and "\x00" not in t).map(lambda t: (t, f"\u2018{t}\u2019")),
)
_NOISE = st.sampled_from(["", " ", "/* ; */", "-- ;\n", "\n# ;\n", "/* /* ; */ */"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_LITERALS, _NOISE, _NOISE, st.sampled_from(["", ";", " FORMAT JSONEachRow", " FORMAT CSV ;"]))
def test_string_literals_survive_the_rewrite(
    ws: Workspace, literal: tuple[str, str], before: str, after: str, tail: str
) -> None:
    value, written = literal
    guarded = ws.guard(f"SELECT {before}{written}{after} AS v, a FROM events WHERE a = 1{tail}")
    assert ";" not in guarded.sql
    assert ws.run(guarded) == [[value, 1]]
