"""The ``json:`` column annotation (SPEC §4.3): parse once, extract per row.

A path is a list of object keys with at most one ``[:]`` step that maps the rest
of the path over an array's elements. That is all Tinybird supports, and it keeps
``extract`` a couple of dict lookups per column on the ingest hot path.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["ARRAY_MAP", "MISSING", "ArrayMap", "JsonPath", "JsonPathError", "Missing", "parse_jsonpath"]


class JsonPathError(ValueError):
    """A path outside the supported subset; the message is the client-facing text."""


class Missing(enum.Enum):
    """Sentinel type: the path does not exist in the row (distinct from JSON null)."""

    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = Missing.MISSING


class ArrayMap(enum.Enum):
    """Sentinel type for the ``[:]`` step (an enum so a key named "[:]" cannot collide)."""

    ARRAY_MAP = "[:]"


ARRAY_MAP: Final = ArrayMap.ARRAY_MAP

# Dotted keys: anything but the characters that have syntax of their own.
_DOT_KEY_RE = re.compile(r"\.([^.\[\]'\"*\s]+)")
_QUOTED_KEY_RE = re.compile(r"\.?\['((?:[^'\\]|\\.)*)'\]")
_ARRAY_RE = re.compile(r"\.?\[:\]")
_BAD_BRACKET_RE = re.compile(r"\.?\[(\"[^\]]*\"|[A-Za-z_][^\]]*)\]")


@dataclass(frozen=True)
class JsonPath:
    """A parsed path. ``array_index`` is the position of ``ARRAY_MAP`` in ``steps``, if any."""

    text: str
    steps: tuple[str | ArrayMap, ...]
    array_index: int | None
    # Split once here so extract() never slices or branches on step kinds.
    _head: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _tail: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cut = len(self.steps) if self.array_index is None else self.array_index
        head = tuple(s for s in self.steps[:cut] if isinstance(s, str))
        tail = tuple(s for s in self.steps[cut + 1 :] if isinstance(s, str))
        object.__setattr__(self, "_head", head)
        object.__setattr__(self, "_tail", tail)

    @property
    def is_root(self) -> bool:
        """``$``: the column takes the whole raw line, which only the caller has."""
        return not self.steps

    def extract(self, obj: Any) -> Any:
        """Return the value at this path, or MISSING.

        For a ``[:]`` path over a list, return a list with one entry per element
        (MISSING where an element lacks the sub-path). A non-list where the array
        should be is returned as is, so the type converter reports the real type.
        """
        cur = obj
        for key in self._head:
            if type(cur) is not dict:
                return MISSING
            cur = cur.get(key, MISSING)
            if cur is MISSING:
                return MISSING
        if self.array_index is None or not self._tail or type(cur) is not list:
            return cur
        return [_walk(item, self._tail) for item in cur]


def _walk(obj: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if type(obj) is not dict:
            return MISSING
        obj = obj.get(key, MISSING)
        if obj is MISSING:
            return MISSING
    return obj


def _unescape(key: str) -> str:
    return re.sub(r"\\(.)", r"\1", key)


def parse_jsonpath(text: str) -> JsonPath:
    """Parse a ``json:`` annotation path; raise JsonPathError with the SPEC §4.3 wording."""
    if not text.startswith("$"):
        raise JsonPathError(f"Invalid JSONPath {text}")
    steps: list[str | ArrayMap] = []
    pos, end = 1, len(text)
    while pos < end:
        if m := _ARRAY_RE.match(text, pos):
            steps.append(ARRAY_MAP)
        elif m := _QUOTED_KEY_RE.match(text, pos):
            steps.append(_unescape(m.group(1)))
        elif m := _DOT_KEY_RE.match(text, pos):
            steps.append(m.group(1))
        elif _BAD_BRACKET_RE.match(text, pos):
            raise JsonPathError(f"Invalid JSONPath {text}: keys in brackets should be single quoted")
        else:
            # Indexes [0], wildcards, filters, stray characters: outside the subset.
            raise JsonPathError(f"Invalid JSONPath {text}")
        pos = m.end()
    levels = steps.count(ARRAY_MAP)
    if levels > 1:
        raise JsonPathError(f"Nested arrays are not supported. Found {levels} levels of nesting.")
    array_index = steps.index(ARRAY_MAP) if levels else None
    return JsonPath(text, tuple(steps), array_index)
