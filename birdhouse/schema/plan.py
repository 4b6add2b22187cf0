"""What conversion does per column, decided once per schema (SPEC §4.4, §5).

A :class:`Plan` holds a column's parsed json path, where its value comes from
(one key, a path walk, the raw line or the whole object), its §4.4
missing/null policy and its §5 value converter. ``convert`` runs plans row by
row; ``fastpath`` generates code from them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from birdhouse.schema.columns import Column
from birdhouse.schema.jsonpath import ARRAY_MAP, JsonPath, parse_jsonpath
from birdhouse.schema.types import ChType
from birdhouse.schema.values import MessageContext, ValueConverter, compile_converter

__all__ = ["FROM_KEY", "FROM_LINE", "FROM_OBJECT", "FROM_PATH", "Absent", "Plan", "plan"]


class Absent(enum.Enum):
    OMIT = "omit"  # leave the key out: the engine evaluates DEFAULT
    NULL = "null"
    EMPTY = "empty"  # explicit null into an Array without DEFAULT → []
    M1 = "m1"
    M2 = "m2"


@dataclass(frozen=True)
class Plan:
    name: str
    path: JsonPath
    convert: ValueConverter
    on_missing: Absent
    on_null: Absent
    ctx: MessageContext
    root: bool  # `$`: the raw line (String) or the object itself (JSON)
    root_object: bool
    key: str | None  # `$.k`: one dict lookup instead of a path walk
    ch_type: ChType

    @property
    def source(self) -> int:
        if self.root:
            return FROM_OBJECT if self.root_object else FROM_LINE
        return FROM_KEY if self.key is not None else FROM_PATH


FROM_KEY, FROM_PATH, FROM_LINE, FROM_OBJECT = range(4)


def plan(column: Column, lenient: bool) -> Plan:
    assert column.jsonpath is not None
    path = parse_jsonpath(column.jsonpath)
    ch_type = column.ch_type
    ctx = MessageContext(column.name, column.jsonpath)
    has_default = column.default_kind == "DEFAULT"
    nullable = ch_type.is_nullable
    cut = path.array_index if path.array_index is not None else len(path.steps)
    top_level = cut == 1 and path.steps[0] is not ARRAY_MAP
    if has_default:
        on_missing = Absent.OMIT
    elif nullable:
        on_missing = Absent.NULL
    else:
        on_missing = Absent.M1 if top_level else Absent.M2
    if nullable:
        on_null = Absent.NULL
    elif has_default:
        on_null = Absent.OMIT
    else:
        on_null = Absent.EMPTY if ch_type.name == "Array" else Absent.M2
    return Plan(
        name=column.name,
        path=path,
        convert=compile_converter(ch_type, ctx, lenient=lenient, type_text=column.type),
        on_missing=on_missing,
        on_null=on_null,
        ctx=ctx,
        root=path.is_root,
        root_object=path.is_root and ch_type.unwrap().name == "JSON",
        key=path.steps[0] if len(path.steps) == 1 and isinstance(path.steps[0], str) else None,
        ch_type=ch_type,
    )
