"""What a read-only query's AST may contain.

Node kinds are an allowlist: a construct the guard has not been taught is
refused rather than trusted. Table functions are an allowlist too (a few row
generators). Scalar functions are a denylist, since there are thousands of
harmless ones; it names those that reach objects by name (dictionaries, Join
tables, settings, files, models), call out over the network, write, or stall.
"""

from __future__ import annotations

from collections.abc import Callable

from birdhouse.query.ast import AstNode
from birdhouse.query.errors import SqlRefused

__all__ = ["ALLOWED_TABLE_FUNCTIONS", "NOT_SUPPORTED", "check_tree", "root_format"]

NOT_SUPPORTED = "Only SELECT or DESCRIBE queries are supported"

ALLOWED_KINDS = frozenset(
    {
        "SelectWithUnionQuery", "SelectIntersectExceptQuery", "SelectQuery", "DescribeQuery",
        "ExpressionList", "Identifier", "Literal", "Function", "Asterisk", "QualifiedAsterisk",
        "ColumnsRegexpMatcher", "ColumnsListMatcher", "QualifiedColumnsRegexpMatcher",
        "QualifiedColumnsListMatcher",
        "ColumnsTransformerList", "ColumnsExceptTransformer", "ColumnsReplaceTransformer",
        "ColumnsReplaceTransformer::Replacement", "ColumnsApplyTransformer", "TablesInSelectQuery",
        "TablesInSelectQueryElement", "TableExpression", "TableIdentifier", "TableJoin", "Subquery",
        "ArrayJoin", "SampleRatio", "OrderByElement", "WithElement", "WindowDefinition", "WindowListElement",
        "InterpolateElement",
    }
)  # fmt: skip

# Row generators only: they read nothing but their arguments.
ALLOWED_TABLE_FUNCTIONS = frozenset(
    {"numbers", "numbers_mt", "zeros", "zeros_mt", "generate_series", "generateSeries", "values"}
)

# Every table function of engine 26.9 (system.table_functions); refused as scalar
# calls too, because some names are both (`file`). `format` as a scalar is harmless.
# fmt: off
_TABLE_FUNCTION_NAMES = frozenset(
    name.lower()
    for name in (
        "ytsaurus", "hudiCluster", "deltaLakeCluster", "paimonAzureCluster", "paimonS3Cluster",
        "icebergAzureCluster", "icebergS3Cluster", "deltaLakeAzure", "paimonHDFS", "paimon",
        "icebergLocal", "deltaLakeAzureCluster", "icebergS3", "iceberg", "hdfsCluster", "paimonLocal",
        "azureBlobStorageCluster", "icebergHDFSCluster", "s3Cluster", "hdfs", "oss", "gcs", "hudi", "cosn",
        "s3", "azureBlobStorage", "prometheusQueryRange", "prometheusQuery", "timeSeriesSelector",
        "timeSeriesMetricFamilies", "timeSeriesTags", "timeSeriesSamples", "mergeTreeProjection",
        "paimonAzure", "loop", "postgresql", "clusterAllReplicas", "viewIfPermitted", "view", "jdbc",
        "paimonHDFSCluster", "mergeTreeCodecBlockCounts", "mergeTreeTextIndex",
        "mergeTreeAnalyzeIndexesUUID", "filesystem", "mergeTreeIndex", "icebergCluster",
        "icebergLocalCluster", "icebergAzure", "bigquery", "paimonS3", "generateRandom", "dictionary",
        "fuzzQuery", "icebergHDFS", "SQLStandardValues", "merge", "url", "executable", "fuzzJSON",
        "deltaLakeS3", "urlCluster", "deltaLakeS3Cluster", "deltaLakeLocal", "eval", "fileCluster", "file",
        "redis", "arrowstream", "mergeTreeAnalyzeIndexes", "input", "mysql", "viewExplain", "null", "odbc",
        "mongodb", "deltaLake", "sqlite", "cluster", "python", "primes", "paimonCluster", "remoteSecure",
        "remote", "timeSeriesMetrics", "timeSeriesData", "kql",
    )
)

_DENIED_FUNCTIONS = _TABLE_FUNCTION_NAMES | frozenset(
    name.lower()
    for name in (
        # read other objects by name
        "joinGet", "joinGetOrNull", "hasColumnInTable", "getSetting", "getSettingOrDefault",
        "getServerSetting", "getMergeTreeSetting", "getMaxTableNameLengthForDatabase", "catboostEvaluate",
        "modelEvaluate", "naiveBayesClassifier", "naiveBayesClassifierWithProb",
        "naiveBayesClassifierWithAllProbs",
        # host details, side effects, stalls
        "filesystemAvailable", "filesystemCapacity", "filesystemUnreserved", "filesystemFree",
        "filesystemTotal", "logTrace", "sleep", "sleepEachRow", "generateSerialID", "showCertificate",
        "zookeeperSessionUptime",
    )
)
# fmt: on
# dictGet*/dictHas/dictIsIn read dictionaries; ai* call external model APIs;
# __* are engine internals (e.g. __getScalar).
_DENIED_PREFIXES = ("dict", "ai", "__")

_IN_FUNCTIONS = frozenset(
    f"{g}{n}{base}{s}".lower()
    for g in ("", "global")
    for n in ("", "not")
    for base in ("in", "nullIn")
    for s in ("", "IgnoreSet")
)
_SYSTEM_DATABASES = frozenset({"system", "information_schema", "INFORMATION_SCHEMA"})


def _refuse(message: str, status: int = 400) -> SqlRefused:
    return SqlRefused(message, status)


def root_format(root: AstNode, *, allow_format: bool) -> str | None:
    """Check the statement's top-level shape; return the FORMAT it names, if any."""
    if root.kind == "SelectWithUnionQuery":
        body = "ExpressionList"
    elif root.kind == "DescribeQuery":
        body = "TableExpression"
    else:
        raise _refuse(NOT_SUPPORTED)
    if not root.children or root.children[0].kind != body:
        raise _refuse(f"{NOT_SUPPORTED}: unexpected statement shape")
    fmt: str | None = None
    for child in root.children[1:]:
        if child.kind == "Set":
            raise _refuse(f"{NOT_SUPPORTED}: SETTINGS clauses are not allowed (limits are set by the server)")
        if child.kind == "Literal":
            raise _refuse(f"{NOT_SUPPORTED}: INTO OUTFILE is not allowed")
        if child.kind == "Identifier" and fmt is None and allow_format:
            fmt = child.name
            continue
        raise _refuse(f"{NOT_SUPPORTED}: unexpected clause {child.kind}")
    return fmt


def _check_function(node: AstNode, parent: AstNode | None) -> None:
    name = node.name
    if parent is not None and parent.kind == "TableExpression":
        if name not in ALLOWED_TABLE_FUNCTIONS:
            raise _refuse(
                f"{NOT_SUPPORTED}: table function '{name}' is not allowed; only this workspace's data "
                f"sources and the generators {', '.join(sorted(ALLOWED_TABLE_FUNCTIONS))} can be read"
            )
        return
    key = name.lower()
    if key in _DENIED_FUNCTIONS or key.startswith(_DENIED_PREFIXES):
        raise _refuse(
            f"{NOT_SUPPORTED}: function '{name}' is not allowed: it reaches data, settings or services "
            "outside the query's own tables"
        )


def check_tree(
    root: AstNode,
    classify_table: Callable[[str], None],
    database: str,
    expected_ctes: int,
) -> None:
    """Walk the tree: refuse what is not allowed; call ``classify_table`` for every table read.

    Tables are the ``TableIdentifier`` nodes and the identifier on the right of
    an IN (``x IN t`` reads table ``t``).
    """
    table_like: set[int] = set()
    with_elements = 0
    forbidden_qualifiers = _SYSTEM_DATABASES | {database}
    for node, parent in root.walk():
        kind = node.kind
        if kind == "Set":
            raise _refuse(f"{NOT_SUPPORTED}: SETTINGS clauses are not allowed (limits are set by the server)")
        if kind not in ALLOWED_KINDS:
            if kind in ("Explain", "InsertQuery") or kind.endswith("Query"):
                raise _refuse(NOT_SUPPORTED)
            raise _refuse(f"{NOT_SUPPORTED}: unsupported syntax ({kind})")
        if kind == "WithElement":
            with_elements += 1
        elif kind == "TableIdentifier":
            classify_table(node.name)
        elif kind == "Function":
            _check_function(node, parent)
            args = node.children[0].children if node.children else []
            in_table = len(args) == 2 and args[1].kind == "Identifier"
            if node.name.lower() in _IN_FUNCTIONS and node.children[0].kind == "ExpressionList" and in_table:
                table_like.add(id(args[1]))
                classify_table(args[1].name)
        elif kind == "Identifier" and id(node) not in table_like and parent is not root:
            qualifier, dot, _ = node.name.partition(".")
            if dot and qualifier in forbidden_qualifiers:
                raise _refuse(
                    f"{NOT_SUPPORTED}: '{node.name[:100]}' refers to another database; "
                    "only this workspace's data sources can be read"
                )
    if with_elements != expected_ctes:
        raise _refuse("The query could not be verified: unrecognised WITH clause (write `WITH name AS (SELECT …)`)")
