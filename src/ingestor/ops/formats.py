"""Write rows as a table (for people), CSV, JSON or NDJSON (for programs), streaming.

Machine formats carry no decoration: a CSV header and rows, one JSON array, or one JSON object per line.
Dates and times are ISO 8601 (UTC), IP addresses text, ``raw_data`` an object (JSON formats only). The
table is printed in chunks, so even an unlimited table needs bounded memory. On a terminal it shows the
columns that fit its width, most useful first (the rest with ``--wide``); elsewhere it is plain text with
every column (:class:`~ingestor.ops.screen.Screen`).
"""

from __future__ import annotations

import csv
import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO, cast

from ingestor.ops.screen import Screen
from ingestor.terminal import iso_time

FORMATS = ("table", "csv", "json", "ndjson")
TABLE_CHUNK = 500
"""Rows per printed table: a table is laid out whole, so long outputs come as several tables."""

_ADDRESSES = (
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Interface,
    ipaddress.IPv6Interface,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
)
_RIGHT_ALIGNED = {"id", "port", "asn", "times_seen", "events", "rows", "files"}


def json_value(value: Any) -> Any:
    """A value JSON can hold: ISO dates and times, text addresses; dicts and lists recursively."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, _ADDRESSES):
        return str(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        mapping = cast("Mapping[object, Any]", value)
        return {str(k): json_value(v) for k, v in mapping.items()}
    if isinstance(value, list | tuple):
        items = cast("Sequence[object]", value)
        return [json_value(v) for v in items]
    return value


def text_value(value: Any) -> str:
    """A cell of CSV or a table: empty for NULL, ``YYYY-MM-DD HH:MM:SSZ`` for times (UTC)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return iso_time(value)
    if isinstance(value, Mapping | list):
        return json.dumps(json_value(value), ensure_ascii=False)
    return str(json_value(value))


def write_rows(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    fmt: str,
    out: TextIO,
    *,
    raw_column: str | None = "raw_data",
    title: str | None = None,
    priority: Sequence[str] = (),
    left_out: list[str] | None = None,
) -> int:
    """Write ``rows`` in format ``fmt``; return how many were written.

    ``columns`` are the CSV and table columns; JSON formats add ``raw_column`` when the rows have it. A
    table on a terminal narrower than its rows keeps the columns of ``priority`` that fit (in that order
    of importance) and appends the others it left out to ``left_out``; without ``priority`` it shows all.
    """
    if fmt == "csv":
        return _write_csv(rows, columns, out)
    if fmt in ("json", "ndjson"):
        keys = [*columns, raw_column] if raw_column else list(columns)
        return _write_json(rows, keys, out, lines=fmt == "ndjson")
    if fmt == "table":
        return _write_table(rows, columns, out, title, priority, left_out if left_out is not None else [])
    raise ValueError(f"unknown output format {fmt!r}")


def _write_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], out: TextIO) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow([_csv_cell(row.get(column)) for column in columns])
        count += 1
    return count


def _csv_cell(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return text_value(value)


def _write_json(rows: Iterable[Mapping[str, Any]], keys: Sequence[str], out: TextIO, *, lines: bool) -> int:
    count = 0
    for row in rows:
        item = json.dumps({key: json_value(row.get(key)) for key in keys if key in row}, ensure_ascii=False)
        if lines:
            out.write(item + "\n")
        else:
            out.write(("[\n  " if count == 0 else ",\n  ") + item)
        count += 1
    if not lines:
        out.write("[]\n" if count == 0 else "\n]\n")
    return count


def _write_table(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    out: TextIO,
    title: str | None,
    priority: Sequence[str],
    left_out: list[str],
) -> int:
    screen = Screen(out)
    count = 0
    shown: list[int] | None = None
    chunk: list[list[str]] = []
    for row in rows:
        chunk.append([text_value(row.get(column)) for column in columns])
        count += 1
        if len(chunk) == TABLE_CHUNK:
            shown = shown or _fitting(screen, columns, chunk, priority, left_out)
            screen.print(_table(screen, columns, chunk, shown, title if count == TABLE_CHUNK else None))
            chunk = []
    if chunk or count == 0:
        shown = shown or _fitting(screen, columns, chunk, priority, left_out)
        screen.print(_table(screen, columns, chunk, shown, title if count <= TABLE_CHUNK else None))
    return count


def _fitting(
    screen: Screen, columns: Sequence[str], cells: list[list[str]], priority: Sequence[str], left_out: list[str]
) -> list[int]:
    """Indexes of the columns to show: all of them, or on a terminal those of ``priority`` that fit."""
    every = list(range(len(columns)))
    if screen.plain or not priority:
        return every
    ranked = [columns.index(name) for name in priority if name in columns]
    ranked += [index for index in every if index not in ranked]
    keep = len(ranked)
    while keep > 1 and screen.measure(_table(screen, columns, cells, sorted(ranked[:keep]), None)) > screen.width:
        keep -= 1
    left_out.extend(columns[index] for index in ranked[keep:])
    return sorted(ranked[:keep])


def _table(screen: Screen, columns: Sequence[str], cells: list[list[str]], shown: list[int], title: str | None) -> Any:
    names = [columns[index] for index in shown]
    table = screen.table(title, *names, right=tuple(name for name in names if name in _RIGHT_ALIGNED))
    for line in cells:
        table.add_row(*(line[index] for index in shown))
    return table


def human_count(number: int | float | None) -> str:
    """``1,234,567``."""
    return "-" if number is None else f"{int(number):,}"


def human_bytes(number: int | float | None) -> str:
    """``1.2 GB`` (powers of 1024, named as people read them)."""
    if number is None:
        return "-"
    value = float(number)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} TB"


def human_seconds(seconds: float | None) -> str:
    """``0.4 s``, ``2 min 5 s``, ``1 h 3 min``."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
