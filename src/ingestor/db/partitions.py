"""``ss_events`` partitioned by report date: the partitions, made ahead of need and on demand.

Each partition holds one period of report dates (a month by default; a week or a day with
``EVENTS_PARTITION``), named after its first day: ``ss_events_p20261101``. There is no default partition,
so no row can land anywhere but in its dated partition: before a file is loaded, the partition of its
report date is made if it is missing (a late file for an old date lands like any other), and each cycle
makes those of the coming periods. A report date outside the accepted range (see :func:`check_date`)
fails its file with a clear error.

A partition is made as a table of its own and then attached: ``CREATE TABLE ... PARTITION OF`` would
wait for every query on ``ss_events`` (it locks the parent exclusively), ``ATTACH PARTITION`` only for
other schema changes. Several processes may make the same partition at once: an advisory lock orders
them, the later one finds it made.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

import psycopg
from psycopg import sql

from ingestor.db.errors import wrap_exceptions
from ingestor.errors import ReportFileError

log = logging.getLogger(__name__)

Granularity = Literal["month", "week", "day"]
PARTITION_LOCK = 0x5353_5041_5254  # "SSPART": one maker of partitions at a time
_BOUND = re.compile(r"FROM \('(\d{4}-\d{2}-\d{2})'\) TO \('(\d{4}-\d{2}-\d{2})'\)")


@dataclass(frozen=True, order=True)
class Partition:
    """One attached partition: report dates ``start <= report_date < end``."""

    start: date
    end: date
    name: str


def period(day: date, granularity: Granularity) -> tuple[date, date]:
    """The period of ``day``: its month, its ISO week (from Monday) or the day itself."""
    if granularity == "day":
        return day, day + timedelta(days=1)
    if granularity == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    start = day.replace(day=1)
    return start, (start + timedelta(days=32)).replace(day=1)


def partition_name(start: date) -> str:
    return f"ss_events_p{start:%Y%m%d}"


def is_partitioned(conn: psycopg.Connection[Any]) -> bool:
    """Whether ``ss_events`` is the partitioned table (a database not yet converted holds a plain one)."""
    row = conn.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass('ss_events')").fetchone()
    return bool(row and row[0] == "p")


def partitions(conn: psycopg.Connection[Any], parent: str = "ss_events") -> list[Partition]:
    """The attached partitions of ``parent``, oldest first (one being detached is not counted)."""
    rows = conn.execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = to_regclass(%s) AND NOT i.inhdetachpending",
        (parent,),
    ).fetchall()
    found: list[Partition] = []
    for name, bound in rows:
        match = _BOUND.search(bound or "")
        if match:
            found.append(Partition(date.fromisoformat(match.group(1)), date.fromisoformat(match.group(2)), name))
    return sorted(found)


def covering(existing: list[Partition], day: date) -> Partition | None:
    return next((p for p in existing if p.start <= day < p.end), None)


def span_for(existing: list[Partition], day: date, granularity: Granularity) -> tuple[date, date]:
    """The period of ``day``, shortened where it would overlap a partition made with another granularity."""
    start, end = period(day, granularity)
    for partition in existing:
        if partition.end <= day:
            start = max(start, partition.end)
        elif partition.start > day:
            end = min(end, partition.start)
    return start, end


def ensure(
    conn: psycopg.Connection[Any], day: date, granularity: Granularity, *, parent: str = "ss_events"
) -> Partition | None:
    """The partition of ``day``, made if missing; None when ``parent`` is not partitioned. Autocommit."""
    if parent == "ss_events" and not is_partitioned(conn):
        return None
    existing = partitions(conn, parent)
    if (found := covering(existing, day)) is not None:
        return found
    with wrap_exceptions(where="making a partition of ss_events"), conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
        existing = partitions(conn, parent)  # another process may have made it meanwhile
        if (found := covering(existing, day)) is not None:
            return found
        start, end = span_for(existing, day, granularity)
        made = Partition(start, end, partition_name(start) if parent == "ss_events" else f"{parent}_p{start:%Y%m%d}")
        name, table = sql.Identifier(made.name), sql.Identifier(parent)
        conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING STORAGE)").format(name, table))
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD CHECK (report_date >= {} AND report_date < {})").format(
                name, sql.Literal(start), sql.Literal(end)
            )
        )  # lets the attach skip its scan (and documents the bound on the table itself)
        conn.execute(
            sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                table, name, sql.Literal(start), sql.Literal(end)
            )
        )
    log.info("made partition %s of %s for report dates %s to %s", made.name, parent, start, end - timedelta(days=1))
    return made


def ensure_range(
    conn: psycopg.Connection[Any], first: date, last: date, granularity: Granularity, *, parent: str = "ss_events"
) -> list[Partition]:
    """The partitions of every report date from ``first`` to ``last``, made where missing."""
    made: list[Partition] = []
    for day in _period_starts(first, last, granularity):
        partition = ensure(conn, day, granularity, parent=parent)
        if partition is None:
            return []
        made.append(partition)
    return made


def _period_starts(first: date, last: date, granularity: Granularity) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day = period(day, granularity)[1]


def check_date(day: date, today: date, *, oldest: date, future_days: int) -> None:
    """Refuse a report date no report can have: later than ``future_days`` after today, or before ``oldest``."""
    if day > today + timedelta(days=future_days):
        raise ReportFileError(
            f"report date {day} is in the future (today is {today}, UTC): not loaded; the file's date is wrong"
        )
    if day < oldest:
        raise ReportFileError(
            f"report date {day} is before {oldest}, the oldest date kept (RETENTION_DAYS / EVENTS_OLDEST_DATE):"
            " not loaded"
        )
