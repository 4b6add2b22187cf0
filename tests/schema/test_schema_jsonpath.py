from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from birdhouse.schema.jsonpath import ARRAY_MAP, MISSING, JsonPath, JsonPathError, parse_jsonpath


@pytest.mark.parametrize(
    ("text", "steps", "array_index"),
    [
        ("$", (), None),
        ("$.a", ("a",), None),
        ("$.a.b.c", ("a", "b", "c"), None),
        ("$.['product.code']", ("product.code",), None),
        ("$.product.['code.id']", ("product", "code.id"), None),
        ("$.['a-b'][:].id", ("a-b", ARRAY_MAP, "id"), 1),
        ("$.arr[:]", ("arr", ARRAY_MAP), 1),
        ("$[:]", (ARRAY_MAP,), 0),
        ("$.arr[:].code.id", ("arr", ARRAY_MAP, "code", "id"), 1),
        ("$.['with space']", ("with space",), None),
        ("$.['it\\'s']", ("it's",), None),
        ("$.['[:]']", ("[:]",), None),
        ("$.a-b", ("a-b",), None),
        ("$.messages[:]", ("messages", ARRAY_MAP), 1),
    ],
)
def test_supported_paths(text: str, steps: tuple[object, ...], array_index: int | None) -> None:
    path = parse_jsonpath(text)
    assert path.text == text
    assert path.steps == steps
    assert path.array_index == array_index
    assert path.is_root == (text == "$")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("$.a[:].b[:]", "Nested arrays are not supported. Found 2 levels of nesting."),
        ("$[:][:][:]", "Nested arrays are not supported. Found 3 levels of nesting."),
        ('$.["x"]', 'Invalid JSONPath $.["x"]: keys in brackets should be single quoted'),
        ("$.[x]", "Invalid JSONPath $.[x]: keys in brackets should be single quoted"),
        ('$["x"]', 'Invalid JSONPath $["x"]: keys in brackets should be single quoted'),
        ("a.b", "Invalid JSONPath a.b"),
        ("", "Invalid JSONPath "),
        (".a", "Invalid JSONPath .a"),
        ("$.a[0]", "Invalid JSONPath $.a[0]"),
        ("$.a.*", "Invalid JSONPath $.a.*"),
        ("$.a[?(@.b)]", "Invalid JSONPath $.a[?(@.b)]"),
        ("$..a", "Invalid JSONPath $..a"),
        ("$.", "Invalid JSONPath $."),
        ("$a", "Invalid JSONPath $a"),
        ("$.['unterminated]", "Invalid JSONPath $.['unterminated]"),
    ],
)
def test_unsupported_paths(text: str, message: str) -> None:
    with pytest.raises(JsonPathError) as info:
        parse_jsonpath(text)
    assert str(info.value) == message


ROW: dict[str, Any] = {
    "a": {"b": {"c": 1}, "n": None},
    "product.code": "x",
    "arr": [{"id": 1}, {"id": None}, {}, 5, {"id": [2]}],
    "plain": [1, 2],
    "s": "str",
    "nul": None,
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$", ROW),
        ("$.a.b.c", 1),
        ("$.a.b", {"c": 1}),
        ("$.a.n", None),
        ("$.nul", None),
        ("$.missing", MISSING),
        ("$.a.missing", MISSING),
        ("$.s.x", MISSING),
        ("$.nul.x", MISSING),
        ("$.['product.code']", "x"),
        ("$.plain[:]", [1, 2]),
        ("$.plain", [1, 2]),
        ("$.arr[:].id", [1, None, MISSING, MISSING, [2]]),
        ("$.s[:].id", "str"),
        ("$.nul[:].id", None),
        ("$.missing[:].id", MISSING),
        ("$.a.b.c[:]", 1),
    ],
)
def test_extract(text: str, expected: object) -> None:
    assert parse_jsonpath(text).extract(ROW) == expected


def test_extract_on_non_object_root() -> None:
    assert parse_jsonpath("$.a").extract([1, 2]) is MISSING
    assert parse_jsonpath("$[:].a").extract([{"a": 1}, {}]) == [1, MISSING]


def test_missing_is_distinct_from_null() -> None:
    assert MISSING is not None
    assert repr(MISSING) == "MISSING"
    assert parse_jsonpath("$.k").extract({"k": None}) is None
    assert parse_jsonpath("$.k").extract({}) is MISSING


def test_jsonpath_is_frozen_and_comparable() -> None:
    a, b = parse_jsonpath("$.a[:].b"), parse_jsonpath("$.a[:].b")
    assert a == b
    assert hash(a) == hash(b)
    with pytest.raises(AttributeError):
        a.text = "x"  # type: ignore[misc]
    assert isinstance(a, JsonPath)


_KEY = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\\"), min_size=1)


@given(st.lists(_KEY, min_size=1, max_size=4), st.data())
def test_bracket_paths_round_trip_through_extract(keys: list[str], data: st.DataObject) -> None:
    text = "$" + "".join(".['" + k.replace("'", "\\'") + "']" for k in keys)
    path = parse_jsonpath(text)
    assert path.steps == tuple(keys)
    value = data.draw(st.integers())
    doc: object = value
    for k in reversed(keys):
        doc = {k: doc}
    assert path.extract(doc) == value
