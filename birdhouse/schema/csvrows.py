"""CSV bodies for the Data Sources API: rows become JSON objects keyed by
column name, so the one ingest converter (schema/convert.py) handles them.

Columns are matched by position to the data source's stored columns (a first
row equal to the column names is a header and skipped). Every value arrives
as text, so conversion runs in lenient mode (numeric strings into numbers);
an empty field is NULL (DEFAULT, or NULL for a Nullable column) except for
String columns, where it is the empty string.
"""

from __future__ import annotations

import csv
import io

import msgspec

from birdhouse.schema.columns import Column

_STRINGS = ("String", "FixedString")


def csv_columns(columns: list[Column]) -> list[Column]:
    """The stored columns, each read from the JSON key of its own name."""
    return [
        msgspec.structs.replace(c, jsonpath=f"$.['{c.name}']" if "." in c.name else f"$.{c.name}")
        for c in columns
        if c.stored
    ]


def csv_to_ndjson(body: bytes, columns: list[Column], delimiter: str = ",") -> tuple[bytes, int]:
    """(NDJSON lines, rows skipped as header). Rows with too many or too few
    fields are passed on as they are, so conversion quarantines them."""
    stored = [c for c in columns if c.stored]
    names = [c.name for c in stored]
    string_like = {c.name for c in stored if c.ch_type.unwrap().name in _STRINGS}
    reader = csv.reader(io.StringIO(body.decode("utf-8-sig", "replace")), delimiter=delimiter)
    lines: list[bytes] = []
    header = 0
    for number, row in enumerate(reader):
        if not row:
            continue
        if number == 0 and [cell.strip() for cell in row] == names:
            header = 1
            continue
        if len(row) != len(names):
            lines.append(msgspec.json.encode(row))  # not an object: quarantined with its text
            continue
        record = {
            name: (value if value != "" or name in string_like else None)
            for name, value in zip(names, row, strict=True)
        }
        lines.append(msgspec.json.encode(record))
    return b"\n".join(lines), header
