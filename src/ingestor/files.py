"""One file of a run: claim it in the ledger, check its report date and make its partition, download it to
a spool file, load it in one transaction, record its fate.

A file that fails is recorded as failed (or interrupted by a stop) and retried by a later run; that
includes the database errors of that file alone (a deadlock, a lock or statement timeout, a refused
value: see ``db/errors.py``). Only a lost connection or an unreachable server (or a role that cannot
write) escapes, as a fatal :class:`~ingestor.errors.DatabaseError`: the run ends, and the file is left to
the run's end to be marked interrupted (:attr:`FileLoader.in_flight`).

Safe to use from several threads at once: each call has its own pooled connection, spool file and parse
worker (parse workers are per thread).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import IO, Any

import psycopg

from ingestor import ledger, spool
from ingestor.catalog import Catalog
from ingestor.config import Settings
from ingestor.db import partitions
from ingestor.db.connect import Database
from ingestor.db.errors import is_fatal, wrap_exceptions
from ingestor.errors import (
    ApiError,
    DatabaseError,
    DatabaseTimeoutError,
    DiskSpaceError,
    DownloadError,
    IngestorError,
    ReportFileError,
    StopRequested,
)
from ingestor.lifecycle import FindingsPolicy
from ingestor.load import LoadStats, load_report
from ingestor.logs import log_context
from ingestor.parse.worker import shared_worker
from ingestor.sources import FileOutcome, Reporter, ReportSource

log = logging.getLogger(__name__)


class FileLoader:
    """Loads files of one run (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        catalog: Catalog,
        stop: threading.Event,
        reporter: Reporter,
        today: Callable[[], date],
    ) -> None:
        self.settings = settings
        self.db = db
        self.catalog = catalog
        self.stop = stop
        self.reporter = reporter
        self.today = today
        self._lock = threading.Lock()
        self._in_flight: dict[int, int] = {}
        self.findings = FindingsPolicy.from_settings(settings)

    @property
    def in_flight(self) -> list[int]:
        """Ledger ids of the files claimed whose fate is not recorded yet (a lost connection left them)."""
        with self._lock:
            return list(self._in_flight.values())

    def forget(self) -> None:
        with self._lock:
            self._in_flight.clear()

    def process(self, source: ReportSource, run_id: int) -> FileOutcome:
        """Load one file; its failure is its outcome, only a fatal database error is raised."""
        report_type = self.catalog.canonical(source.report_type)  # archives may use retired type names
        with log_context(report_type=report_type, report_date=source.report_date.isoformat()):
            with self.db.connection() as conn:
                file_id = ledger.claim_file(
                    conn,
                    source=source.source,
                    source_key=source.source_key,
                    report_type=report_type,
                    report_date=source.report_date,
                    file_name=source.file_name,
                    subscription=source.subscription,
                    run_id=run_id,
                )
                me = threading.get_ident()
                with self._lock:
                    self._in_flight[me] = file_id
                self.reporter.file_started(source.label, None)
                with spool.open_spool(self.settings.work_dir) as spooled:
                    outcome = self._fetch_and_load(conn, source, report_type, file_id, spooled.file, spooled.path)
                with self._lock:
                    self._in_flight.pop(me, None)
            self.reporter.file_finished(outcome)
            return outcome

    def _fetch_and_load(
        self,
        conn: psycopg.Connection[Any],
        source: ReportSource,
        report_type: str,
        file_id: int,
        spooled: IO[bytes],
        spool_path: Path,
    ) -> FileOutcome:
        outcome = FileOutcome(source.label, report_type, source.report_date, "failed")
        fetched = None
        try:
            self._prepare(conn, source.report_date)
            shared_worker()  # starts this thread's parse worker (on its first file) while the download runs
            fetched = source.fetch(spooled)
            spooled.flush()
            outcome.size_bytes = fetched.size
            with wrap_exceptions(stop=self.stop), conn.transaction():
                stats = load_report(
                    conn,
                    spool_path,
                    report_type=source.report_type,
                    report_date=source.report_date,
                    file_id=file_id,
                    catalog=self.catalog,
                    batch_rows=self.settings.batch_rows,
                    stop=self.stop,
                    progress=self.reporter.rows_loaded,
                    findings=self.findings,
                )
                ledger.mark_loaded(
                    conn,
                    file_id,
                    stats,
                    size_bytes=fetched.size,
                    sha256=fetched.sha256,
                    download_seconds=fetched.seconds,
                )
            outcome.status, outcome.stats = "loaded", stats
            self._log_loaded(source, stats)
            return outcome
        except StopRequested as exc:
            outcome.status, outcome.error = "interrupted", str(exc)
            log.warning("%s: %s", source.label, exc)
        except (DownloadError, ApiError, ReportFileError, DiskSpaceError) as exc:
            outcome.error = str(exc)
            log.error("%s: %s", source.label, exc)
        except DatabaseError as exc:
            if is_fatal(exc):
                raise  # the connection is gone or the role cannot write: the run ends
            outcome.error = f"database: {exc}{_lock_holders(conn, exc)}"
            log.error("%s: loading failed: %s", source.label, outcome.error)
        except (IngestorError, ValueError, UnicodeError, OSError) as exc:
            outcome.error = f"{type(exc).__name__}: {exc}"
            log.error("%s: loading failed: %s", source.label, outcome.error)
        except Exception as exc:  # a bug must not stop the other files; it is recorded with its type
            outcome.error = f"unexpected {type(exc).__name__}: {exc}"
            log.exception("%s: unexpected failure", source.label)
        with wrap_exceptions():
            ledger.mark_failed(
                conn,
                file_id,
                outcome.error or "failed",
                interrupted=outcome.status == "interrupted",
                size_bytes=fetched.size if fetched else None,
                sha256=fetched.sha256 if fetched else None,
                download_seconds=fetched.seconds if fetched else None,
            )
        return outcome

    def _prepare(self, conn: psycopg.Connection[Any], day: date) -> None:
        """Refuse a report date no report can have; make the partition of the date (before downloading)."""
        partitions.check_date(day, self.today(), oldest=self.settings.oldest_report_date(self.today()), future_days=2)
        with wrap_exceptions(stop=self.stop):
            partitions.ensure(conn, day, self.settings.events_partition)

    @staticmethod
    def _log_loaded(source: ReportSource, stats: LoadStats) -> None:
        label = source.label
        log.info(
            "%s: %d inserted, %d duplicate, %d rejected (%d rows)",
            label,
            stats.inserted,
            stats.duplicates,
            stats.rejected,
            stats.rows_read,
        )
        if stats.anomalies:
            log.info("%s: cleaned values: %s", label, dict(stats.anomalies))
        if stats.rejects:
            log.warning("%s: rejected rows: %s", label, dict(stats.rejects))
        if not stats.known_type:
            log.warning(
                "%s: report type %s is not in the catalog; loaded with the generic mapping", label, source.report_type
            )
        elif stats.columns_unknown:
            log.info("%s: columns not in the published schema: %s", label, ", ".join(stats.columns_unknown))


def _lock_holders(conn: psycopg.Connection[Any], exc: DatabaseError) -> str:
    """For a lock timeout, who holds locks on our tables that block writing (empty if unknown)."""
    if not isinstance(exc, DatabaseTimeoutError) or not isinstance(exc.__cause__, psycopg.errors.LockNotAvailable):
        return ""
    try:
        holders = ledger.lock_holders(conn)
    except psycopg.Error:
        return ""
    return f" (held by {'; '.join(holders)})" if holders else " (held by another transaction)"
