"""The `.pipe` parser and template parameters (birdhouse.schema.pipefile)."""

from __future__ import annotations

import pytest

from birdhouse.schema.pipefile import (
    PipeFile,
    PipeFileError,
    PipeNodeFile,
    TemplateParam,
    parse_pipe_file,
    parse_template,
)

FULL = """
DESCRIPTION >
    Top pages
    per day

TOKEN "dashboard" READ
TOKEN reader READ

NODE filtered
DESCRIPTION >
    Only page views
SQL >
    %
    SELECT * FROM events WHERE action = {{String(action, 'page_hit')}}

NODE endpoint
DESCRIPTION "inline description"
SQL >
    SELECT pathname, count() AS hits FROM filtered GROUP BY pathname
    ORDER BY hits DESC LIMIT {{Int32(limit, 10)}}
TYPE endpoint
"""


def test_every_keyword() -> None:
    parsed = parse_pipe_file(FULL)
    assert parsed.description == "Top pages\nper day"
    assert parsed.tokens == [("dashboard", "READ"), ("reader", "READ")]
    assert [n.name for n in parsed.nodes] == ["filtered", "endpoint"]
    filtered, endpoint = parsed.nodes
    assert filtered == PipeNodeFile(
        "filtered",
        "%\nSELECT * FROM events WHERE action = {{String(action, 'page_hit')}}",
        "Only page views",
        "",
        None,
    )
    assert endpoint.type == "endpoint" and endpoint.description == "inline description"
    assert parsed.endpoint == endpoint and parsed.materialized == []


def test_materialized_node() -> None:
    parsed = parse_pipe_file("NODE mv\nSQL >\n    SELECT a FROM x\nTYPE MATERIALIZED\nDATASOURCE target\n")
    assert parsed == PipeFile([PipeNodeFile("mv", "SELECT a FROM x", None, "materialized", "target")])
    assert parsed.materialized == parsed.nodes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("NODE a\nSQL >\n    SELECT 1\nFOO bar\n", "Line 4: unknown keyword FOO"),
        ("NODE a\nSQL >\n    SELECT 1\nKAFKA_TOPIC x\n", "Line 4: unknown keyword KAFKA_TOPIC"),
        ("SQL >\n    SELECT 1\n", "Line 1: SQL must come after a NODE line"),
        ("TYPE ENDPOINT\n", "Line 1: TYPE must come after a NODE line"),
        ("DESCRIPTION >\n    x\n", "at least one NODE"),
        ("NODE a\nTYPE ENDPOINT\n", "NODE a has no SQL"),
        ("NODE a\nSQL SELECT 1\n", "Line 2: SQL must be followed by '>'"),
        ("NODE a\nSQL >\n    SELECT 1\nTYPE COPY\n", "Line 4: TYPE COPY is not supported"),
        ("NODE a\nSQL >\n    SELECT 1\nTYPE SINK\n", "TYPE SINK is not supported"),
        ("NODE a\nSQL >\n    SELECT 1\nTYPE weird\n", "Line 4: unknown node TYPE"),
        ("NODE a\nSQL >\n    SELECT 1\nTYPE MATERIALIZED\n", "names no DATASOURCE"),
        ("NODE a\nSQL >\n    SELECT 1\nDATASOURCE t\n", "not TYPE MATERIALIZED"),
        (
            'NODE a\nSQL >\n    SELECT 1\nTYPE MATERIALIZED\nDATASOURCE t\nENGINE "AggregatingMergeTree"\n',
            "Line 6: ENGINE in a pipe is not supported: birdhouse requires the target of a materialized view to be "
            "a deployed data source",
        ),
        ("NODE a\nSQL >\n    SELECT 1\nENGINE_SORTING_KEY x\n", "Line 4: ENGINE_SORTING_KEY in a pipe"),
        ("NODE a\nSQL >\n    SELECT 1\nNODE a\nSQL >\n    SELECT 2\n", "Line 4: NODE a appears more than once"),
        ("NODE a\nSQL >\n    SELECT 1\nSQL >\n    SELECT 2\n", "Line 4: SQL appears more than once"),
        ("NODE 1bad\nSQL >\n    SELECT 1\n", "Line 1: invalid NODE name"),
        ('TOKEN "t" APPEND\nNODE a\nSQL >\n    SELECT 1\n', "Line 1: a pipe TOKEN can only be READ"),
        ("TOKEN\nNODE a\nSQL >\n    SELECT 1\n", "Line 1: TOKEN needs a name"),
        ("NODE a\nSQL >\n    SELECT 1\nTYPE ENDPOINT\nNODE b\nSQL >\n    SELECT 2\nTYPE ENDPOINT\n", "only one"),
        (
            "NODE a\nSQL >\n    SELECT 1\nTYPE ENDPOINT\n"
            "NODE b\nSQL >\n    SELECT 2\nTYPE MATERIALIZED\nDATASOURCE t\n",
            "both an endpoint and a materialized view",
        ),
        (
            "NODE a\nSQL >\n    SELECT {{Int32(x, 1)}}\nTYPE MATERIALIZED\nDATASOURCE t\n",
            "a materialized node cannot have parameters",
        ),
        ("NODE a\nSQL >\n    %\n    {% if defined(x) %} SELECT 1 {% end %}\n", "Line 1: NODE a: Template {% … %}"),
        ("  indented\n", "Line 1: unexpected indented line"),
    ],
)
def test_errors_name_keyword_and_line(text: str, message: str) -> None:
    with pytest.raises(PipeFileError) as caught:
        parse_pipe_file(text)
    assert message in str(caught.value)


def test_template_types_and_defaults() -> None:
    sql, params = parse_template(
        "%\nSELECT {{String(s, 'x')}}, {{Int8(a, -3)}}, {{UInt64(b)}}, {{Int(c, 1)}}, {{Float64(f, 1.5)}},"
        " {{DateTime(t, '2024-01-01 00:00:00')}}, {{Date(d, '2024-01-01')}}, {{Boolean(flag, True)}}, {{bare}},"
        " {{ Int32(r, 5, required=True, description='n') }}, {{String(s)}}"
    )
    assert sql == (
        "SELECT {s:String}, {a:Int8}, {b:UInt64}, {c:Int32}, {f:Float64}, {t:DateTime}, {d:Date}, {flag:Bool}, "
        "{bare:String}, {r:Int32}, {s:String}"
    )
    assert params == [
        TemplateParam("s", "String", "x"),
        TemplateParam("a", "Int8", "-3"),
        TemplateParam("b", "UInt64", None),
        TemplateParam("c", "Int32", "1"),
        TemplateParam("f", "Float64", "1.5"),
        TemplateParam("t", "DateTime", "2024-01-01 00:00:00"),
        TemplateParam("d", "Date", "2024-01-01"),
        TemplateParam("flag", "Bool", "true"),
        TemplateParam("bare", "String", None),
        TemplateParam("r", "Int32", None),
    ]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT {% if x %}1{% end %}", "control blocks are not supported"),
        ("SELECT {# note #} 1", "template comments are not supported"),
        ("SELECT {{Array(ids, 'Int32')}}", "Array() is not supported"),
        ("SELECT {{columns(cols)}}", "columns() is not supported"),
        ("SELECT {{Whatever(x)}}", "Unknown template function Whatever()"),
        ("SELECT {{String('x')}}", "Invalid template expression"),
        ("SELECT {{x + 1}}", "Unsupported template expression"),
        ("SELECT {{String(x, y)}}", "a default must be a literal"),
        ("SELECT {{String(x, 1, bogus=2)}}", "unknown argument 'bogus'"),
        ("SELECT {{String(x)}}, {{Int32(x)}}", "used as both String and Int32"),
        ("SELECT {{String(x, 'a')}}, {{String(x, 'b')}}", "two different defaults"),
        ("SELECT {{String(token)}}", "'token' cannot be a parameter name"),
        ("SELECT '{{String(x)}}'", "inside a string literal"),
        ("SELECT * FROM {t:Identifier}", "must be written as templates"),
        ("SELECT {{String(x}}", "Invalid template expression"),
    ],
)
def test_template_errors(sql: str, message: str) -> None:
    with pytest.raises(PipeFileError) as caught:
        parse_template(sql)
    assert message in str(caught.value)


def test_map_literals_are_not_placeholders() -> None:
    sql, params = parse_template("SELECT {'a': 1}['a'] AS v, {{Int32(n, 2)}} AS n")
    assert sql == "SELECT {'a': 1}['a'] AS v, {n:Int32} AS n"
    assert params == [TemplateParam("n", "Int32", "2")]
