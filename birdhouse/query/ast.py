"""Reading the engine's ``EXPLAIN AST`` dump into a tree.

The dump is one node per line, indented one space per level::

    SelectWithUnionQuery (children 1)
     ExpressionList (children 1)
      SelectQuery (children 2)
       ...
        TableIdentifier events (alias e)

Each line is ``<Kind>[ <name>][ (alias <alias>)][ (children <n>)]``. Names and
aliases are printed raw, so the parser is strict: every indent must be exactly
one deeper than its parent's, every declared child count must match, and there
must be exactly one root. The guard also refuses identifiers that contain
control characters or the ``(alias `` / ``(children `` markers before anything
reaches the engine, so a crafted name cannot forge or hide a line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["AstNode", "AstParseError", "parse_explain_ast"]

_CHILDREN_RE = re.compile(r" \(children (\d+)\)$")
_ALIAS_RE = re.compile(r" \(alias (.*)\)$")


class AstParseError(ValueError):
    """The text is not an ``EXPLAIN AST`` dump of the expected shape."""


@dataclass
class AstNode:
    kind: str
    name: str = ""
    alias: str | None = None
    children: list[AstNode] = field(default_factory=list)
    declared_children: int = 0

    def walk(self) -> Iterator[tuple[AstNode, AstNode | None]]:
        """Every node with its parent, in document order (iterative: the tree may be deep)."""
        stack: list[tuple[AstNode, AstNode | None]] = [(self, None)]
        while stack:
            node, parent = stack.pop()
            yield node, parent
            stack.extend((child, node) for child in reversed(node.children))


def _parse_line(text: str) -> AstNode:
    declared = 0
    match = _CHILDREN_RE.search(text)
    if match:
        declared = int(match.group(1))
        text = text[: match.start()]
    alias: str | None = None
    match = _ALIAS_RE.search(text)
    if match:
        alias = match.group(1)
        text = text[: match.start()]
    kind, _, name = text.partition(" ")
    if not kind:
        raise AstParseError("empty node line")
    return AstNode(kind=kind, name=name.strip(), alias=alias, declared_children=declared)


def parse_explain_ast(text: str) -> AstNode:
    """Parse an ``EXPLAIN AST`` dump. Raises :class:`AstParseError` on anything unexpected."""
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        raise AstParseError("EXPLAIN AST returned nothing")
    stack: list[tuple[int, AstNode]] = []
    root: AstNode | None = None
    for line in lines:
        depth = len(line) - len(line.lstrip(" "))
        node = _parse_line(line[depth:].rstrip("\r"))
        if depth == 0:
            if root is not None:
                raise AstParseError("more than one root node")
            root = node
            stack = [(0, node)]
            continue
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if not stack or stack[-1][0] != depth - 1:
            raise AstParseError(f"unexpected indentation at {line.strip()!r}")
        stack[-1][1].children.append(node)
        stack.append((depth, node))
    assert root is not None
    for node, _ in root.walk():
        if len(node.children) != node.declared_children:
            raise AstParseError(
                f"node {node.kind} declares {node.declared_children} children but has {len(node.children)}"
            )
    return root
