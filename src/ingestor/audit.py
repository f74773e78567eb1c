"""The audit trail: one ``ss_ingestion_log`` row per run, telling the truth.

Status values: ``running`` while it runs; then ``success``, ``partial`` (some files failed, others
loaded), ``error`` (nothing could be done: API refused, API or database unreachable, every file failed)
or ``interrupted`` (a shutdown, or a crash noticed at the next start). v1.0.0's columns keep their
meaning: ``reports_found`` = files listed, ``events_ingested`` = rows inserted, ``events_skipped`` = rows
not inserted (duplicates and rejected).
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import psycopg

from ingestor.db.queries import QUERIES
from ingestor.redaction import redact

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 2000


@dataclass
class RunTotals:
    """What a run did, accumulated file by file."""

    reports_found: int = 0
    files_new: int = 0
    files_loaded: int = 0
    files_failed: int = 0
    rows_read: int = 0
    rows_inserted: int = 0
    rows_duplicate: int = 0
    rows_rejected: int = 0
    bytes_downloaded: int = 0
    listing_incomplete: bool = False
    """The listing reached SS_LIST_LIMIT in a part it could not split: files may be missing."""
    errors: list[str] = field(default_factory=list)


def start_run(conn: psycopg.Connection[Any], kind: str, window: tuple[date, date] | None = None) -> int:
    """Open a run row (status ``running``) and return its id."""
    row = conn.execute(
        QUERIES["start_run"],
        {
            "kind": kind,
            "window_start": window[0] if window else None,
            "window_end": window[1] if window else None,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        },
    ).fetchone()
    assert row is not None
    return int(row[0])


def note_listing(conn: psycopg.Connection[Any], run_id: int, totals: RunTotals) -> None:
    """Record how many files the run listed and will load, before it loads them."""
    conn.execute(
        QUERIES["note_listing"], {"id": run_id, "reports_found": totals.reports_found, "files_new": totals.files_new}
    )


def finish_run(conn: psycopg.Connection[Any], run_id: int, status: str, totals: RunTotals, error: str | None) -> None:
    """Close a run row with its final status, counts and (redacted) error text."""
    conn.execute(
        QUERIES["finish_run"],
        {
            "id": run_id,
            "status": status,
            "reports_found": totals.reports_found,
            "events_ingested": totals.rows_inserted,
            "events_skipped": totals.rows_duplicate + totals.rows_rejected,
            "error_message": redact(error)[:MAX_ERROR_CHARS] if error else None,
            "files_new": totals.files_new,
            "files_loaded": totals.files_loaded,
            "files_failed": totals.files_failed,
            "rows_read": totals.rows_read,
            "rows_duplicate": totals.rows_duplicate,
            "rows_rejected": totals.rows_rejected,
            "bytes_downloaded": totals.bytes_downloaded,
        },
    )


def recover_stale(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """Close runs and files a dead process left ``running``/``loading``. Call only with the ingestion lock.

    A dead run is closed with the counts of the files it committed (the ledger knows them): a crash after six
    files must not read as a run that loaded nothing.
    """
    with conn.transaction():
        files = conn.execute(QUERIES["interrupt_stale_files"]).fetchall()
        runs = conn.execute(QUERIES["interrupt_stale_runs"]).fetchall()
    if runs or files:
        log.warning("closed %d run(s) and %d file(s) left unfinished by a stopped process", len(runs), len(files))
    return len(runs), len(files)


def last_success(conn: psycopg.Connection[Any]) -> datetime | None:
    row = conn.execute(QUERIES["last_success"]).fetchone()
    return row[0] if row else None
