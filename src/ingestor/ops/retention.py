"""Retention: delete events older than N days in short batches, and prune ledger and audit by their own
settings.

Design (see the README, "Retention"): in a partitioned ``ss_events``, every partition whose report dates
all lie before the cutoff is detached (``DETACH PARTITION ... CONCURRENTLY``: queries and loads go on) and
dropped, which takes about as long for a month of millions of rows as for ten; only in the partition the
cutoff falls into are rows deleted. Rows are deleted one report date at a time, ``batch`` rows per
statement, each statement its own short transaction. A DELETE takes the same table lock as the loader's
COPY (ROW EXCLUSIVE), which does not conflict with it, and touches only rows of old report dates, which
the loader does not write: ingestion goes on while a prune runs, and a stop request ends a prune within
one batch. ``lock_timeout`` keeps a prune from queueing behind (and so in front of) a migration.

What is kept:

* ``ss_findings`` keeps its history: ``first_seen`` must still mean "first seen ever", or every recurring
  finding would become "new" again once its first events are pruned. Its event ids may then point at
  deleted events; ``new`` copes with that.
* ``ss_reports`` rows (v1.0.0's per type-and-date counters) go with their events.
* the ledger ``ss_report_files`` is kept by default: it is what stops a later listing or backfill from
  downloading pruned files again. ``LEDGER_RETENTION_DAYS`` (never shorter than the event retention)
  prunes it, with the rejected-row samples by cascade.
* the audit log ``ss_ingestion_log`` is kept by default; ``AUDIT_RETENTION_DAYS`` prunes finished runs.

Each prune is recorded in ``ss_maintenance_log`` (events, report counters, ledger entries and audit rows
deleted, the report dates removed, status, error), never in ``ss_ingestion_log``, which is the log of
ingestion runs that IRIS Data Explorer shows. A dry run counts what would go, changes nothing and records
nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from ingestor.config import Settings
from ingestor.db import partitions
from ingestor.db.connect import Database
from ingestor.errors import DatabaseError, InstanceLockedError
from ingestor.ops import QUERIES
from ingestor.redaction import first_line

log = logging.getLogger(__name__)

PRUNE_LOCK = 0x5353_5052_554E  # "SSPRUN": one prune at a time (ingestion is not locked out)
DEFAULT_BATCH = 10_000
"""Events per DELETE; see the README for the measurement behind it."""


@dataclass
class PruneResult:
    """What a prune removed (or, in a dry run, would remove)."""

    cutoff: date
    """Events with ``report_date < cutoff`` are removed."""
    dry_run: bool
    status: str = "success"
    events: int = 0
    events_by_date: dict[date, int] = field(default_factory=dict)
    reports: int = 0
    ledger_cutoff: date | None = None
    ledger_files: int = 0
    audit_before: datetime | None = None
    audit_runs: int = 0
    batches: int = 0
    seconds: float = 0.0
    max_batch_seconds: float = 0.0
    run_id: int | None = None
    error: str | None = None
    partitions: list[str] = field(default_factory=list)
    """Partitions dropped (or, in a dry run, that would be); their events counted from ss_reports."""

    @property
    def exit_code(self) -> int:
        return {"success": 0, "interrupted": 130}.get(self.status, 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "status": self.status,
            "cutoff": self.cutoff,
            "events": self.events,
            "events_by_date": {day.isoformat(): count for day, count in self.events_by_date.items()},
            "reports": self.reports,
            "ledger_cutoff": self.ledger_cutoff,
            "ledger_files": self.ledger_files,
            "audit_before": self.audit_before,
            "audit_runs": self.audit_runs,
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
            "max_batch_seconds": round(self.max_batch_seconds, 3),
            "run_id": self.run_id,
            "error": self.error,
            "partitions": self.partitions,
        }


def cutoff_date(older_than_days: int, today: date | None = None) -> date:
    """The first report date kept: events more than ``older_than_days`` days old go."""
    return (today or datetime.now(UTC).date()) - timedelta(days=older_than_days)


def check_arguments(older_than_days: int, *, batch: int = DEFAULT_BATCH, ledger_days: int = 0) -> None:
    """Raise ``ValueError`` for a prune that cannot be done (checked before anything starts)."""
    if older_than_days < 1:
        raise ValueError("the retention must be at least 1 day")
    if batch < 1:
        raise ValueError("the batch size must be at least 1")
    if ledger_days and ledger_days < older_than_days:
        raise ValueError(
            f"the ledger retention ({ledger_days} days) must not be shorter than the event retention "
            f"({older_than_days} days): pruned files would be downloaded and loaded again"
        )


def prune(
    db: Database,
    older_than_days: int,
    *,
    dry_run: bool = False,
    batch: int = DEFAULT_BATCH,
    ledger_days: int = 0,
    audit_days: int = 0,
    stop: threading.Event | None = None,
    today: date | None = None,
) -> PruneResult:
    """Delete events whose report date is more than ``older_than_days`` days before today (UTC).

    ``ledger_days``/``audit_days`` > 0 also prune ledger entries of older report dates and audit rows of
    runs started longer ago (0 keeps them). Raises ``ValueError`` for impossible settings and
    :class:`InstanceLockedError` when another prune runs; a database failure during the prune is
    recorded and returned as status ``error``.
    """
    check_arguments(older_than_days, batch=batch, ledger_days=ledger_days)
    stop = stop or threading.Event()
    result = PruneResult(cutoff=cutoff_date(older_than_days, today), dry_run=dry_run)
    if ledger_days:
        result.ledger_cutoff = cutoff_date(ledger_days, today)
    if audit_days:
        result.audit_before = datetime.now(UTC) - timedelta(days=audit_days)
    if dry_run:
        with db.connection() as conn:
            _count(conn, result)
        return result
    conn = db.connect()
    try:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (PRUNE_LOCK,)).fetchone()
        if not (row and row[0]):
            raise InstanceLockedError(f"another prune is running on {db.display}")
        conn.execute("SET lock_timeout = '10s'")
        _prune(conn, result, batch, stop)
    finally:
        conn.close()
    return result


def apply_retention(
    db: Database, settings: Settings, *, stop: threading.Event | None = None, today: date | None = None
) -> PruneResult | None:
    """The configured retention (``RETENTION_DAYS`` > 0), as the service runs it; ``None`` when disabled."""
    if settings.retention_days <= 0:
        return None
    return prune(
        db,
        settings.retention_days,
        today=today,
        batch=settings.retention_batch_rows,
        ledger_days=settings.ledger_retention_days,
        audit_days=settings.audit_retention_days,
        stop=stop,
    )


def _whole_partitions(conn: psycopg.Connection[Any], cutoff: date) -> list[partitions.Partition]:
    """The partitions of ss_events whose report dates all lie before ``cutoff`` (none if not partitioned)."""
    if not partitions.is_partitioned(conn):
        return []
    return [p for p in partitions.partitions(conn) if p.end <= cutoff]


def _count(conn: psycopg.Connection[Any], result: PruneResult) -> None:
    whole = _whole_partitions(conn, result.cutoff)
    result.partitions = [p.name for p in whole]
    first_row_date = whole[-1].end if whole else date.min
    by_date: dict[date, int] = {}
    for partition in whole:
        rows = conn.execute(QUERIES["reported_events"], {"from": partition.start, "until": partition.end})
        by_date.update({day: int(count) for day, count in rows})
    rows = conn.execute(QUERIES["old_report_dates"], {"from": first_row_date, "cutoff": result.cutoff})
    by_date.update({day: int(count) for day, count in rows})
    result.events_by_date = by_date
    result.events = sum(by_date.values())
    result.reports = _scalar(conn, "count_old_reports", {"cutoff": result.cutoff})
    if result.ledger_cutoff:
        result.ledger_files = _scalar(conn, "count_old_files", {"cutoff": result.ledger_cutoff})
    if result.audit_before:
        result.audit_runs = _scalar(conn, "count_old_runs", {"before": result.audit_before})


def _prune(conn: psycopg.Connection[Any], result: PruneResult, batch: int, stop: threading.Event) -> None:
    started = time.monotonic()
    whole = _whole_partitions(conn, result.cutoff)
    first_row_date = whole[-1].end if whole else date.min
    rows = conn.execute(QUERIES["old_report_dates"], {"from": first_row_date, "cutoff": result.cutoff}).fetchall()
    planned = {day: int(count) for day, count in rows}
    row = conn.execute(
        QUERIES["start_prune"], {"cutoff": result.cutoff, "host": socket.gethostname(), "pid": os.getpid()}
    ).fetchone()
    assert row is not None
    result.run_id = int(row[0])
    try:
        for partition in whole:
            if stop.is_set():
                result.status = "interrupted"
                break
            _drop_partition(conn, partition, result)
        for day in planned:
            if result.status != "success":
                break
            deleted = _delete_date(conn, day, batch, stop, result)
            if deleted:
                result.events_by_date[day] = deleted
            if stop.is_set():
                result.status = "interrupted"
                break
        if result.status == "success":
            result.reports = _rowcount(conn, "delete_old_reports", {"cutoff": result.cutoff})
            if result.ledger_cutoff:
                result.ledger_files = _rowcount(conn, "delete_old_files", {"cutoff": result.ledger_cutoff})
            if result.audit_before:
                result.audit_runs = _rowcount(conn, "delete_old_runs", {"before": result.audit_before})
    except psycopg.Error as exc:
        result.status = "error"
        result.error = f"{type(exc).__name__}: {first_line(exc)}"
        log.error("prune failed: %s", result.error)
    result.seconds = time.monotonic() - started
    days = sorted(result.events_by_date)
    try:
        conn.execute(
            QUERIES["finish_prune"],
            {
                "id": result.run_id,
                "status": result.status,
                "deleted": result.events,
                "reports": result.reports,
                "files": result.ledger_files,
                "runs": result.audit_runs,
                "first_date": days[0] if days else None,
                "last_date": days[-1] if days else None,
                "seconds": result.seconds,
                "error_message": result.error
                or ("interrupted by a shutdown request" if result.status == "interrupted" else None),
            },
        )
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot record the prune in ss_maintenance_log: {exc}") from None
    log.info(
        "prune %s: %d events before %s deleted in %d batches (%.1f s, longest batch %.2f s); "
        "%d report counters, %d ledger entries, %d audit rows",
        result.status,
        result.events,
        result.cutoff,
        result.batches,
        result.seconds,
        result.max_batch_seconds,
        result.reports,
        result.ledger_files,
        result.audit_runs,
    )


def _drop_partition(conn: psycopg.Connection[Any], partition: partitions.Partition, result: PruneResult) -> None:
    """Detach a partition without blocking queries or loads, then drop it; count what it held."""
    counted = conn.execute(QUERIES["reported_events"], {"from": partition.start, "until": partition.end}).fetchall()
    started = time.monotonic()
    name = sql.Identifier(partition.name)
    try:
        conn.execute(sql.SQL("ALTER TABLE ss_events DETACH PARTITION {} CONCURRENTLY").format(name))
    except psycopg.errors.ObjectNotInPrerequisiteState:  # an earlier prune was stopped half-way through it
        conn.execute(sql.SQL("ALTER TABLE ss_events DETACH PARTITION {} FINALIZE").format(name))
    conn.execute(sql.SQL("DROP TABLE {}").format(name))
    result.max_batch_seconds = max(result.max_batch_seconds, time.monotonic() - started)
    result.partitions.append(partition.name)
    for day, count in counted:
        result.events_by_date[day] = int(count)
        result.events += int(count)
    log.info("dropped partition %s (report dates %s to %s)", partition.name, partition.start, partition.end)


def _delete_date(
    conn: psycopg.Connection[Any], day: date, batch: int, stop: threading.Event, result: PruneResult
) -> int:
    deleted = 0
    while not stop.is_set():
        started = time.monotonic()
        count = _rowcount(conn, "delete_events_batch", {"report_date": day, "batch": batch})
        result.max_batch_seconds = max(result.max_batch_seconds, time.monotonic() - started)
        result.batches += 1
        deleted += count
        result.events += count
        if count < batch:
            break
    return deleted


def _scalar(conn: psycopg.Connection[Any], name: str, params: dict[str, Any]) -> int:
    row = conn.execute(QUERIES[name], params).fetchone()
    return int(row[0]) if row else 0


def _rowcount(conn: psycopg.Connection[Any], name: str, params: dict[str, Any]) -> int:
    with conn.cursor() as cursor:
        cursor.execute(QUERIES[name], params)
        return max(cursor.rowcount, 0)
