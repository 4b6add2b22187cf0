"""Parsing the engine's EXPLAIN AST dump (pure: sample dumps taken from engine 26.9)."""

from __future__ import annotations

import pytest

from birdhouse.query.ast import AstNode, AstParseError, parse_explain_ast

SAMPLE = """SelectWithUnionQuery (children 2)
 ExpressionList (children 1)
  SelectQuery (children 2)
   ExpressionList (children 1)
    Identifier t.a
   TablesInSelectQuery (children 1)
    TablesInSelectQueryElement (children 1)
     TableExpression (children 1)
      TableIdentifier events (alias t)
 Identifier JSON
"""


def test_parses_kinds_names_aliases_and_children() -> None:
    root = parse_explain_ast(SAMPLE)
    assert root.kind == "SelectWithUnionQuery"
    assert [c.kind for c in root.children] == ["ExpressionList", "Identifier"]
    assert root.children[1].name == "JSON"
    table = next(node for node, _ in root.walk() if node.kind == "TableIdentifier")
    assert (table.name, table.alias) == ("events", "t")


def test_walk_is_document_order_with_parents() -> None:
    root = parse_explain_ast(SAMPLE)
    walked = [(node.kind, parent.kind if parent else None) for node, parent in root.walk()]
    assert walked[0] == ("SelectWithUnionQuery", None)
    assert walked[-1] == ("Identifier", "SelectWithUnionQuery")
    assert ("TableIdentifier", "TableExpression") in walked


def test_deep_trees_do_not_hit_the_recursion_limit() -> None:
    depth = 5000
    text = "\n".join(" " * i + "Function f (children 1)" for i in range(depth)) + "\n" + " " * depth + "Asterisk"
    root = parse_explain_ast(text)
    assert sum(1 for _ in root.walk()) == depth + 1


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SelectWithUnionQuery (children 1)\n",  # a declared child is missing
        "SelectWithUnionQuery\n ExpressionList\n",  # an undeclared child
        "SelectWithUnionQuery (children 1)\n   ExpressionList\n",  # skips an indentation level
        "A\nB\n",  # two roots
        # a name carrying a newline would forge a line: the count no longer matches
        "Function f (children 1)\n ExpressionList (children 1)\n  Identifier a\n TableIdentifier x\n",
    ],
)
def test_malformed_dumps_are_refused(text: str) -> None:
    with pytest.raises(AstParseError):
        parse_explain_ast(text)


def test_node_defaults() -> None:
    node = AstNode("Asterisk")
    assert (node.name, node.alias, node.children) == ("", None, [])
