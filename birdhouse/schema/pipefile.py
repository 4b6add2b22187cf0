"""``.pipe`` files: nodes of SQL, a materialized view or an endpoint (SPEC §0.4, §8.4).

The layout mirrors ``.datasource`` files (:mod:`birdhouse.schema.datafile`):
``KEYWORD value`` lines and ``KEYWORD >`` blocks. A pipe is an optional
``DESCRIPTION``, ``TOKEN "name" READ`` lines, and ``NODE <name>`` sections;
the keywords after a ``NODE`` line belong to that node until the next one::

    TOKEN "dashboard" READ

    NODE daily
    SQL >
        %
        SELECT day, sum(n) AS n FROM totals
        WHERE day >= {{Date(since, '2024-01-01')}}
        GROUP BY day
    TYPE ENDPOINT

Template parameters ``{{Type(name[, default])}}`` become ClickHouse query
parameter placeholders ``{name:Type}``: values are bound by the engine, never
spliced into the SQL text (DESIGN invariant 6). Control blocks
(``{% … %}``) are refused with a clear error rather than half-rendered.
Anything birdhouse does not implement is a load error naming the keyword and
line, never silently ignored.
"""

from __future__ import annotations

import ast
import re

import msgspec

from birdhouse.query.lexer import TokenKind, tokenize
from birdhouse.schema.datafile import _blocks, _parse_token, _unquote
from birdhouse.schema.names import InvalidName, validate_identifier

__all__ = [
    "PARAM_TYPES",
    "PipeFile",
    "PipeFileError",
    "PipeNodeFile",
    "TemplateParam",
    "parse_pipe_file",
    "parse_template",
]

# Template function → the ClickHouse type of its query parameter.
PARAM_TYPES: dict[str, str] = {
    "String": "String",
    "Boolean": "Bool",
    "Bool": "Bool",
    "Int": "Int32",
    "Integer": "Int32",
    "Float32": "Float32",
    "Float64": "Float64",
    "Date": "Date",
    "DateTime": "DateTime",
    "DateTime64": "DateTime64(3)",
    **{f"{sign}Int{bits}": f"{sign}Int{bits}" for sign in ("", "U") for bits in (8, 16, 32, 64, 128, 256)},
}
# Template helpers of Tinybird that birdhouse does not implement (named in the error).
_UNSUPPORTED_FUNCTIONS = frozenset(
    {"Array", "column", "columns", "symbol", "sql_and", "defined", "split_to_array", "day_diff", "date_diff_in_days"}
)
_IGNORED_KEYWORDS = frozenset({"description", "example", "format"})
_NODE_KEYWORDS = frozenset({"DESCRIPTION", "SQL", "TYPE", "DATASOURCE"})
_NODE_TYPES = {"ENDPOINT": "endpoint", "MATERIALIZED": "materialized", "STANDARD": "", "DEFAULT": ""}
_UNSUPPORTED_TYPES = frozenset({"COPY", "SINK", "STREAM"})
_ENGINE_RE = re.compile(r"ENGINE(_[A-Z_]+)?")
_TEMPLATE_RE = re.compile(r"\{\{(.*?)\}\}|\{%(.*?)%\}|\{#(.*?)#\}", re.DOTALL)
# The query-string token is authentication; a parameter may not take its name.
_RESERVED_PARAMS = frozenset({"token"})


class PipeFileError(ValueError):
    """A pipe file or template that cannot be loaded; the message says where."""


class TemplateParam(msgspec.Struct, frozen=True):
    """A parameter of a node's SQL. ``default`` is the value's text as the engine
    reads a query parameter (``None``: required)."""

    name: str
    type: str
    default: str | None = None


class PipeNodeFile(msgspec.Struct, frozen=True):
    name: str
    # The SQL as written (templates included): what the catalog stores.
    sql: str
    description: str | None = None
    # "" (a plain node), "endpoint" or "materialized".
    type: str = ""
    # The target data source of a materialized node.
    datasource: str | None = None


class PipeFile(msgspec.Struct, frozen=True):
    nodes: list[PipeNodeFile]
    description: str | None = None
    tokens: list[tuple[str, str]] = []

    @property
    def endpoint(self) -> PipeNodeFile | None:
        return next((n for n in self.nodes if n.type == "endpoint"), None)

    @property
    def materialized(self) -> list[PipeNodeFile]:
        return [n for n in self.nodes if n.type == "materialized"]


# ------------------------------------------------------------------ templates


def _literal(node: ast.expr, where: str) -> str | int | float | bool | None:
    if (isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool))) or (
        isinstance(node, ast.Constant) and node.value is None
    ):
        value: str | int | float | bool | None = node.value
        return value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, (int, float))
        and not isinstance(node.operand.value, bool)
    ):
        return -node.operand.value
    raise PipeFileError(f"{where}: a default must be a literal (a string, number or boolean)")


def _param_text(value: str | int | float | bool, ch_type: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if ch_type == "Bool" and isinstance(value, int):
        return "true" if value else "false"
    return str(value)


def _parse_expression(text: str) -> tuple[str, str, str | int | float | bool | None, bool]:
    """``(name, ClickHouse type, default, required)`` of one ``{{ … }}`` expression."""
    shown = "{{" + text.strip()[:100] + "}}"
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise PipeFileError(f"Invalid template expression {shown}") from None
    if isinstance(tree, ast.Name):
        return tree.id, "String", None, True
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)):
        raise PipeFileError(f"Unsupported template expression {shown}: use {{{{Type(name, default)}}}}")
    function = tree.func.id
    if function in _UNSUPPORTED_FUNCTIONS:
        raise PipeFileError(f"Template function {function}() is not supported by birdhouse ({shown})")
    ch_type = PARAM_TYPES.get(function)
    if ch_type is None:
        raise PipeFileError(
            f"Unknown template function {function[:50]}() in {shown}; supported: {', '.join(sorted(PARAM_TYPES))}"
        )
    if not tree.args or not isinstance(tree.args[0], ast.Name) or len(tree.args) > 2:
        raise PipeFileError(f"Invalid template expression {shown}: write {function}(name) or {function}(name, default)")
    name = tree.args[0].id
    default = _literal(tree.args[1], shown) if len(tree.args) == 2 else None
    required = False
    for keyword in tree.keywords:
        if keyword.arg == "default":
            default = _literal(keyword.value, shown)
        elif keyword.arg == "required":
            flag = _literal(keyword.value, shown)
            if not isinstance(flag, bool):
                raise PipeFileError(f"{shown}: required must be True or False")
            required = flag
        elif keyword.arg not in _IGNORED_KEYWORDS:
            raise PipeFileError(f"{shown}: unknown argument {keyword.arg!r}")
    return name, ch_type, default, required


def parse_template(sql: str) -> tuple[str, list[TemplateParam]]:
    """Replace ``{{…}}`` parameters with ``{name:Type}`` placeholders; return the SQL and its parameters.

    A leading ``%`` line (Tinybird's "this node is a template" marker) is dropped.
    """
    lines = sql.split("\n")
    if lines and lines[0].strip() == "%":
        sql = "\n".join(lines[1:])
    params: dict[str, TemplateParam] = {}
    out: list[str] = []
    placed: set[int] = set()
    length = 0
    pos = 0
    for match in _TEMPLATE_RE.finditer(sql):
        if match.group(2) is not None or match.group(3) is not None:
            kind = "{% … %} control blocks" if match.group(2) is not None else "{# … #} template comments"
            raise PipeFileError(f"Template {kind} are not supported by birdhouse: {match.group(0)[:100]!r}")
        name, ch_type, default, required = _parse_expression(match.group(1))
        try:
            validate_identifier(name)
        except InvalidName:
            raise PipeFileError(f"Invalid parameter name {name[:100]!r}") from None
        if name in _RESERVED_PARAMS:
            raise PipeFileError(f"'{name}' cannot be a parameter name: it is the query-string token")
        # required=True wins over a default: the caller must send the value.
        default_text = None if default is None or required else _param_text(default, ch_type)
        previous = params.get(name)
        if previous is not None:
            if previous.type != ch_type:
                raise PipeFileError(f"Parameter '{name}' is used as both {previous.type} and {ch_type}")
            if None not in (default_text, previous.default) and default_text != previous.default:
                raise PipeFileError(f"Parameter '{name}' has two different defaults")
            default_text = default_text if default_text is not None else previous.default
        params[name] = TemplateParam(name, ch_type, default_text)
        chunk = sql[pos : match.start()]
        out.append(chunk)
        length += len(chunk)
        placeholder = f"{{{name}:{ch_type}}}"
        placed.add(length)
        out.append(placeholder)
        length += len(placeholder)
        pos = match.end()
    out.append(sql[pos:])
    rendered = "".join(out)
    _check_placeholders(rendered, placed)
    return rendered, list(params.values())


def _check_placeholders(sql: str, placed: set[int]) -> None:
    """Every ``{name:Type}`` must be one this module wrote, outside any literal:
    a hand-written placeholder (``{t:Identifier}``) would bind values nobody declared."""
    tokens = [t for t in tokenize(sql) if t.kind is not TokenKind.WHITESPACE]
    for token in tokens:
        if token.kind in (TokenKind.STRING, TokenKind.QUOTED_IDENTIFIER, TokenKind.COMMENT, TokenKind.HEREDOC):
            inside = [p for p in placed if token.start < p < token.start + len(token.text)]
            if inside:
                raise PipeFileError(
                    "A template parameter inside a string literal, quoted name or comment is not supported: "
                    "use it as a value, e.g. concat('%', {{String(q)}}, '%')"
                )
    for i, token in enumerate(tokens[:-2]):
        placeholder = token.is_punct("{") and tokens[i + 1].kind is TokenKind.BARE_WORD and tokens[i + 2].is_punct(":")
        if placeholder and token.start not in placed:
            raise PipeFileError(
                f"Query parameter placeholders must be written as templates ({{{{Type(name)}}}}), "
                f"not as {{{tokens[i + 1].text}:…}}"
            )


# ---------------------------------------------------------------------- files


class _Node:
    def __init__(self, lineno: int, name: str) -> None:
        self.lineno = lineno
        self.name = name
        self.sql: str | None = None
        self.description: str | None = None
        self.type = ""
        self.datasource: str | None = None
        self.seen: set[str] = set()

    def build(self) -> PipeNodeFile:
        if self.sql is None or not self.sql.strip():
            raise PipeFileError(f"Line {self.lineno}: NODE {self.name} has no SQL")
        if self.type == "materialized" and self.datasource is None:
            raise PipeFileError(f"Line {self.lineno}: NODE {self.name} is TYPE MATERIALIZED but names no DATASOURCE")
        if self.datasource is not None and self.type != "materialized":
            raise PipeFileError(f"Line {self.lineno}: NODE {self.name} has a DATASOURCE but is not TYPE MATERIALIZED")
        return PipeNodeFile(self.name, self.sql, self.description, self.type, self.datasource)


def _node_keyword(node: _Node, lineno: int, keyword: str, value: str, is_block: bool) -> None:
    if keyword in node.seen:
        raise PipeFileError(f"Line {lineno}: {keyword} appears more than once in NODE {node.name}")
    node.seen.add(keyword)
    if keyword == "DESCRIPTION":
        node.description = value if is_block else _unquote(value)
    elif keyword == "SQL":
        if not is_block:
            raise PipeFileError(f"Line {lineno}: SQL must be followed by '>' and an indented block")
        node.sql = value
    elif keyword == "TYPE":
        kind = _unquote(value).upper()
        if kind in _UNSUPPORTED_TYPES:
            raise PipeFileError(f"Line {lineno}: TYPE {kind} is not supported by birdhouse")
        if kind not in _NODE_TYPES:
            raise PipeFileError(f"Line {lineno}: unknown node TYPE {value[:50]!r} (ENDPOINT or MATERIALIZED)")
        node.type = _NODE_TYPES[kind]
    else:  # DATASOURCE
        target = _unquote(value)
        try:
            validate_identifier(target)
        except InvalidName:
            raise PipeFileError(f"Line {lineno}: invalid DATASOURCE name {target[:100]!r}") from None
        node.datasource = target


def parse_pipe_file(text: str) -> PipeFile:
    """Parse a ``.pipe`` file; raise :class:`PipeFileError` on anything unusable.

    Templates are checked here (so a bad one fails the load) but kept in the
    node SQL: the catalog stores the SQL as written.
    """
    description: str | None = None
    tokens: list[tuple[str, str]] = []
    nodes: list[_Node] = []
    try:
        blocks = _blocks(text)
    except ValueError as exc:
        raise PipeFileError(str(exc)) from None
    for lineno, keyword, value, is_block in blocks:
        if keyword == "NODE":
            name = _unquote(value)
            try:
                validate_identifier(name)
            except InvalidName:
                raise PipeFileError(f"Line {lineno}: invalid NODE name {name[:100]!r}") from None
            if any(n.name == name for n in nodes):
                raise PipeFileError(f"Line {lineno}: NODE {name} appears more than once")
            nodes.append(_Node(lineno, name))
        elif keyword == "TOKEN":
            try:
                token_name, scope = _parse_token(lineno, value)
            except ValueError as exc:
                raise PipeFileError(str(exc)) from None
            if scope != "READ":
                raise PipeFileError(f'Line {lineno}: a pipe TOKEN can only be READ: TOKEN "{token_name}" READ')
            tokens.append((token_name, scope))
        elif _ENGINE_RE.fullmatch(keyword):
            raise PipeFileError(
                f"Line {lineno}: {keyword} in a pipe is not supported: birdhouse requires the target of a "
                "materialized view to be a deployed data source (put the engine in its .datasource file)"
            )
        elif keyword in _NODE_KEYWORDS and nodes:
            _node_keyword(nodes[-1], lineno, keyword, value, is_block)
        elif keyword == "DESCRIPTION":
            if description is not None:
                raise PipeFileError(f"Line {lineno}: DESCRIPTION appears more than once")
            description = value if is_block else _unquote(value)
        elif keyword in _NODE_KEYWORDS:
            raise PipeFileError(f"Line {lineno}: {keyword} must come after a NODE line")
        else:
            raise PipeFileError(f"Line {lineno}: unknown keyword {keyword[:100]}")
    if not nodes:
        raise PipeFileError("A pipe needs at least one NODE")
    built = [node.build() for node in nodes]
    for node, parsed in zip(nodes, built, strict=True):
        try:
            parse_template(parsed.sql)
        except PipeFileError as exc:
            raise PipeFileError(f"Line {node.lineno}: NODE {node.name}: {exc}") from None
    kinds = [n.type for n in built if n.type]
    if kinds.count("endpoint") > 1:
        raise PipeFileError("A pipe can have only one TYPE ENDPOINT node")
    if "endpoint" in kinds and "materialized" in kinds:
        raise PipeFileError("A pipe cannot be both an endpoint and a materialized view: use two pipes")
    for node, parsed in zip(nodes, built, strict=True):
        if parsed.type == "materialized" and parse_template(parsed.sql)[1]:
            raise PipeFileError(f"Line {node.lineno}: NODE {node.name}: a materialized node cannot have parameters")
    return PipeFile(built, description, tokens)
