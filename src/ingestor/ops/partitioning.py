"""``events partition``: convert an ``ss_events`` that already holds events into the partitioned table.

A new database gets the partitioned table from the start (``schema.sql``, migration 7 for an empty one);
a database that v1.0.0 or an earlier version loaded keeps its plain table, on which everything works,
until an operator runs this conversion. It:

1. takes the ingestion lock (a service stands by meanwhile; IRIS Data Explorer goes on reading the old
   table until the swap);
2. makes ``ss_events_partitioned`` with the same columns, without indexes, and its partitions;
3. copies the events one report date at a time, each date in a transaction of its own that also records
   it in ``ss_events_partitioning``: interrupted (Ctrl-C, SIGTERM, a crash), it resumes where it stopped;
4. builds the indexes once every date is copied (faster than maintaining them row by row);
5. checks that the copy holds exactly as many rows as the table, then, in one short transaction, swaps
   the two tables (names, index names, the id sequence, grants) and drops the old one.

It needs free disk space for a second copy of the events while it runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, LiteralString

import psycopg
from psycopg import sql

from ingestor.config import Settings
from ingestor.db import partitions
from ingestor.db.connect import Database
from ingestor.db.errors import wrap_exceptions
from ingestor.db.lock import IngestionLock
from ingestor.db.migrate import grant_viewer
from ingestor.errors import DatabaseError, StopRequested
from ingestor.ops import QUERIES

log = logging.getLogger(__name__)

NEW = "ss_events_partitioned"
OLD = "ss_events_unpartitioned"
PROGRESS = "ss_events_partitioning"

INDEXES: tuple[tuple[str, LiteralString, LiteralString], ...] = (
    (
        "ss_events_report_type_report_date_event_hash_key",
        "UNIQUE INDEX",
        "(report_date DESC NULLS LAST, report_type, event_hash)",
    ),
    ("idx_ss_events_ip", "INDEX", "(ip)"),
    ("idx_ss_events_asn", "INDEX", "(asn)"),
    ("idx_ss_events_hostname", "INDEX", "(hostname)"),
)
"""The indexes of the partitioned ss_events, as in schema.sql: (name, kind, columns)."""


@dataclass
class Conversion:
    """What a conversion did."""

    already: bool = False
    dates: int = 0
    dates_copied: int = 0
    rows: int = 0
    partitions: int = 0
    seconds: float = 0.0
    copy_seconds: float = 0.0
    index_seconds: float = 0.0


Progress = Callable[[int, int, int], None]
"""Called after each copied date with (dates done, dates in all, rows copied so far)."""


def convert(
    db: Database,
    settings: Settings,
    *,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    wait_for_lock: float = 0.0,
) -> Conversion:
    """Convert ``ss_events`` into the partitioned table (see the module docstring)."""
    stop = stop or threading.Event()
    result = Conversion()
    started = time.monotonic()
    lock = IngestionLock(db)
    lock.acquire(wait=wait_for_lock, stop=stop)
    try:
        with db.connect() as conn, wrap_exceptions(stop=stop, where="converting ss_events"):
            conn.execute("SET statement_timeout = 0")  # copying a day, building an index: may take long
            if partitions.is_partitioned(conn):
                result.already = True
                return result
            _prepare(conn, settings)
            _copy(conn, settings, result, stop, progress)
            _index(conn, result)
            _swap(conn, settings, result)
    finally:
        lock.release()
    result.seconds = time.monotonic() - started
    return result


def _prepare(conn: psycopg.Connection[Any], settings: Settings) -> None:
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (LIKE ss_events INCLUDING DEFAULTS) PARTITION BY RANGE (report_date)"
        ).format(sql.Identifier(NEW))
    )
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (report_date DATE PRIMARY KEY, rows BIGINT NOT NULL,"
            " copied_at TIMESTAMPTZ NOT NULL DEFAULT NOW())"
        ).format(sql.Identifier(PROGRESS))
    )


def _copy(
    conn: psycopg.Connection[Any],
    settings: Settings,
    result: Conversion,
    stop: threading.Event,
    progress: Progress | None,
) -> None:
    days = [row[0] for row in conn.execute(QUERIES["distinct_report_dates"])]
    done = {
        row[0]: int(row[1])
        for row in conn.execute(sql.SQL("SELECT report_date, rows FROM {}").format(sql.Identifier(PROGRESS)))
    }
    result.dates = len(days)
    result.rows = sum(done.values())
    started = time.monotonic()
    for number, day in enumerate(sorted(days), start=1):
        if day in done:
            continue
        if stop.is_set():
            raise StopRequested("stopped: run `events partition` again to resume where it stopped")
        partitions.ensure(conn, day, settings.events_partition, parent=NEW)
        with conn.transaction():
            cursor = conn.execute(
                sql.SQL("INSERT INTO {} SELECT * FROM ss_events WHERE report_date = %s").format(sql.Identifier(NEW)),
                (day,),
            )
            copied = max(cursor.rowcount, 0)
            conn.execute(
                sql.SQL("INSERT INTO {} (report_date, rows) VALUES (%s, %s)").format(sql.Identifier(PROGRESS)),
                (day, copied),
            )
        result.rows += copied
        result.dates_copied += 1
        if progress is not None:
            progress(number, len(days), result.rows)
    result.copy_seconds = time.monotonic() - started
    # the partitions of today's period and the next, as a run would make them
    today = date.today()
    partitions.ensure_range(
        conn, today, partitions.period(today, settings.events_partition)[1], settings.events_partition, parent=NEW
    )
    result.partitions = len(partitions.partitions(conn, NEW))


def _index(conn: psycopg.Connection[Any], result: Conversion) -> None:
    """The indexes and the primary key on the copy (each built once over all partitions; resumable)."""
    started = time.monotonic()
    for name, kind, columns in INDEXES:
        conn.execute(
            sql.SQL("CREATE {} IF NOT EXISTS {} ON {} {}").format(
                sql.SQL(kind), sql.Identifier(_temporary(name)), sql.Identifier(NEW), sql.SQL(columns)
            )
        )
    has_key = conn.execute(
        "SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass(%s) AND contype = 'p'", (NEW,)
    ).fetchone()
    if not has_key:
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY (id, report_date)").format(
                sql.Identifier(NEW), sql.Identifier(_temporary("ss_events_pkey"))
            )
        )
    result.index_seconds = time.monotonic() - started


def _temporary(name: str) -> str:
    return f"{name}_partitioned"


def _swap(conn: psycopg.Connection[Any], settings: Settings, result: Conversion) -> None:
    """Check the copy, then put it in the old table's place, in one transaction."""
    with conn.transaction():
        conn.execute("LOCK TABLE ss_events IN ACCESS EXCLUSIVE MODE")
        row = conn.execute("SELECT count(*) FROM ss_events").fetchone()
        stored = int(row[0]) if row else 0
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(NEW))).fetchone()
        copied = int(row[0]) if row else 0
        if stored != copied or copied != result.rows:
            raise DatabaseError(
                f"the copy holds {copied} rows, ss_events {stored} (and the progress table {result.rows}):"
                f" nothing was swapped; drop {NEW} and {PROGRESS} and run `events partition` again"
            )
        old_indexes = [r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'ss_events'")]
        for name in old_indexes:
            conn.execute(
                sql.SQL("ALTER INDEX {} RENAME TO {}").format(sql.Identifier(name), sql.Identifier(f"{name}_old"))
            )
        conn.execute("ALTER SEQUENCE ss_events_id_seq OWNED BY NONE")
        conn.execute(sql.SQL("ALTER TABLE ss_events RENAME TO {}").format(sql.Identifier(OLD)))
        conn.execute(sql.SQL("ALTER TABLE {} RENAME TO ss_events").format(sql.Identifier(NEW)))
        for name, _, _ in (*INDEXES, ("ss_events_pkey", "", "")):
            conn.execute(
                sql.SQL("ALTER INDEX {} RENAME TO {}").format(sql.Identifier(_temporary(name)), sql.Identifier(name))
            )
        for partition in partitions.partitions(conn):
            new_name = partitions.partition_name(partition.start)
            conn.execute(
                sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(partition.name), sql.Identifier(new_name))
            )
        conn.execute("ALTER SEQUENCE ss_events_id_seq OWNED BY ss_events.id")
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(OLD)))
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(PROGRESS)))
    if settings.viewer_role:
        grant_viewer(conn, settings.viewer_role)
    log.info(
        "ss_events is partitioned: %d rows of %d report dates in %d partitions",
        result.rows,
        result.dates,
        result.partitions,
    )
