"""One ingestion run: list a date window, skip files already loaded, then load each new file in its own
transaction (``INGEST_WORKERS`` at a time, ``dispatch.py``), recording everything in the ledger and the
audit log.

A failing file is recorded as failed and retried on a later run; it never stops the other files
(``files.py``). Only a lost connection or an unreachable server ends the run, which is then recorded as
``error`` with the files it was loading ``interrupted`` (or, if the database is still away, by the next
start). A stop request (SIGTERM) abandons the files in flight cleanly: their running statements are
cancelled, their transactions rolled back, and they are marked ``interrupted``, to be loaded whole next
time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from ingestor import audit, ledger, metrics, spool
from ingestor.api.client import ReportItem, ShadowserverClient
from ingestor.catalog import Catalog, load_catalog
from ingestor.config import Settings
from ingestor.db import partitions
from ingestor.db.connect import Database
from ingestor.db.errors import is_fatal, wrap_exceptions
from ingestor.dispatch import Dispatch
from ingestor.errors import ApiError, DatabaseError, StopRequested
from ingestor.files import FileLoader
from ingestor.listing import Listing, wanted
from ingestor.logs import log_context
from ingestor.redaction import REDACTOR, first_line, redact
from ingestor.sources import ApiReport, FileOutcome, NullReporter, Reporter, ReportSource

__all__ = ["EXIT_CODES", "FileOutcome", "Ingestor", "NullReporter", "ReportSource", "Reporter", "RunResult"]

log = logging.getLogger(__name__)


def utc_today() -> date:
    return datetime.now(UTC).date()


@dataclass
class RunResult:
    """A finished run, as recorded in ``ss_ingestion_log``."""

    run_id: int | None
    kind: str
    status: str
    window: tuple[date, date] | None
    totals: audit.RunTotals
    files: list[FileOutcome] = field(default_factory=list)
    files_abandoned: int = 0
    error: str | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.status, 1)


EXIT_CODES = {"success": 0, "partial": 4, "error": 1, "interrupted": 130}
"""Process exit codes by run status (2 = bad configuration, 3 = another instance holds the lock)."""


def run_status(totals: audit.RunTotals, interrupted: bool, fatal: bool) -> str:
    """The truthful status of a run from what happened in it."""
    if interrupted:
        return "interrupted"
    if fatal or (totals.files_failed and not totals.files_loaded):
        return "error"
    if totals.files_failed or totals.listing_incomplete:
        return "partial"
    return "success"


class Ingestor:
    """Runs ingestion windows against one API client and one database."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        client: ShadowserverClient | None,
        *,
        catalog: Catalog | None = None,
        stop: threading.Event | None = None,
        reporter: Reporter | None = None,
        today: Callable[[], date] = utc_today,
    ) -> None:
        self.settings = settings
        self.db = db
        self.client = client
        self.catalog = catalog or load_catalog()
        self.stop = stop or (client.retry.stop if client else threading.Event())
        self.reporter: Reporter = reporter or NullReporter()
        self.today = today
        self._listing_cut: list[str] = []
        """Parts of this run's listing that may be incomplete (SS_LIST_LIMIT reached, nothing left to split)."""

    # ---- windows --------------------------------------------------------------------------------

    def cycle_window(self) -> tuple[date, date]:
        """The window of a scheduled cycle: the last ``SS_LOOKBACK_DAYS`` days up to today (UTC)."""
        end = self.today()
        return end - timedelta(days=self.settings.lookback_days), end

    def backfill_window(self, days: int, until: date | None = None) -> tuple[date, date]:
        """``days`` days before ``until`` (default today) up to it: ``0`` is that day only."""
        if days < 0:
            raise ValueError("backfill days must be 0 or more")
        end = until or self.today()
        return end - timedelta(days=days), end

    # ---- a run ----------------------------------------------------------------------------------

    def run(self, kind: str, window: tuple[date, date]) -> RunResult:
        """List ``window``, load every new file, and record the run. Never raises for a file's failure."""

        client = self.client
        if client is None:
            raise ValueError("listing needs an API client")

        def discover() -> list[ReportSource]:
            return [ApiReport(item, client) for item in self._list(window, client)]

        return self._run(kind, window, discover, delay=self.settings.request_delay)

    def run_files(self, kind: str, sources: Sequence[ReportSource], *, force: bool = False) -> RunResult:
        """Load the given files (e.g. local imports) as one recorded run; ``force`` reloads loaded files."""
        return self._run(kind, None, lambda: list(sources), delay=0.0, force=force)

    def _run(
        self,
        kind: str,
        window: tuple[date, date] | None,
        discover: Callable[[], list[ReportSource]],
        *,
        delay: float,
        force: bool = False,
    ) -> RunResult:
        totals = audit.RunTotals()
        spool.remove_stale(self.settings.work_dir)
        with self.db.connection() as conn:
            run_id = audit.start_run(conn, kind, window)
        result = RunResult(run_id, kind, "running", window, totals)
        started = datetime.now(UTC)
        interrupted = fatal = False
        self._listing_cut = []
        files = FileLoader(self.settings, self.db, self.catalog, self.stop, self.reporter, self.today)
        with log_context(run_id=run_id):
            if window:
                log.info("%s run: window %s to %s", kind, window[0], window[1])
            try:
                self._make_partitions_ahead()
                sources = discover()
                totals.errors.extend(self._listing_cut)
                totals.listing_incomplete = bool(self._listing_cut)
                totals.reports_found = len(sources)
                todo, result.files_abandoned = (sources, 0) if force else self._new_files(sources)
                totals.files_new = len(todo)
                with self.db.connection() as conn:  # what a crash leaves behind still says what was listed
                    audit.note_listing(conn, run_id, totals)
                self.reporter.files_planned(len(todo))
                dispatch = Dispatch(
                    todo,
                    lambda source: files.process(source, run_id),
                    workers=self.settings.workers,
                    catalog=self.catalog,
                    stop=self.stop,
                    delay=delay,
                )
                dispatch.on_outcome = lambda outcome: self._count(totals, outcome)
                try:
                    result.files = dispatch.run()
                finally:
                    result.files = dispatch.outcomes
                interrupted = dispatch.stopped or any(o.status == "interrupted" for o in result.files)
            except StopRequested:
                interrupted = True
            except (ApiError, DatabaseError) as exc:
                fatal = True
                totals.errors.insert(0, str(exc))
                log.error("run failed: %s", exc)
            result.status = run_status(totals, interrupted, fatal)
            result.error = self._error_summary(totals, result.status)
            self._record_end(result, files)
            self._observe(result, started)
            log.info(
                "%s run %s: %d listed, %d new, %d loaded, %d failed; rows %d inserted, %d duplicate, %d rejected",
                kind,
                result.status,
                totals.reports_found,
                totals.files_new,
                totals.files_loaded,
                totals.files_failed,
                totals.rows_inserted,
                totals.rows_duplicate,
                totals.rows_rejected,
            )
        return result

    def _make_partitions_ahead(self) -> None:
        """The partitions of today's period and the next, so the files of a new month find theirs made.

        Not needed for this run (each file makes the partition of its date): a failure is only logged."""
        today = self.today()
        granularity = self.settings.events_partition
        try:
            with self.db.connection() as conn, wrap_exceptions(stop=self.stop):
                partitions.ensure_range(conn, today, partitions.period(today, granularity)[1], granularity)
        except DatabaseError as exc:
            if is_fatal(exc):
                raise
            log.warning("cannot make the partitions of the coming days now: %s", exc)

    def _record_end(self, result: RunResult, files: FileLoader) -> None:
        """Close the run's audit row, and mark the files a lost connection left ``loading`` as interrupted.

        After a lost connection the server may still be away: then the next start closes both (with the
        counts of the files the run committed, which the ledger knows).
        """
        assert result.run_id is not None
        try:
            with self.db.connection(timeout=5.0) as conn:
                for file_id in files.in_flight:
                    ledger.mark_failed(conn, file_id, result.error or "the run ended", interrupted=True)
                audit.finish_run(conn, result.run_id, result.status, result.totals, result.error)
            files.forget()
        except DatabaseError as exc:
            log.warning(
                "cannot record the end of run %d (%s); the next start closes it as interrupted",
                result.run_id,
                first_line(exc),
            )

    def _list(self, window: tuple[date, date], client: ShadowserverClient) -> list[ReportItem]:
        REDACTOR.begin_window()  # ids of earlier listings are forgotten (the last one's stay redactable)
        listing = Listing(client, self.settings)
        items = listing.complete(window[0], window[1])
        if listing.invalid:
            log.warning("ignored %d unusable entries in the report listing", listing.invalid)
        for part in listing.cut:
            message = (
                f"the listing of {part} returned SS_LIST_LIMIT={self.settings.list_limit} files and cannot be split"
                " further: some files may be missing (raise SS_LIST_LIMIT)"
            )
            log.warning("%s", message)
            self._listing_cut.append(message)
        return wanted(items, self.settings)

    def _new_files(self, sources: list[ReportSource]) -> tuple[list[ReportSource], int]:
        with self.db.connection() as conn:
            states = ledger.file_states(conn, (source.source_key for source in sources))
        todo: list[ReportSource] = []
        abandoned = 0
        for item in sources:
            state = states.get(item.source_key)
            if state is None or state.status != "loaded":
                if state is not None and state.status == "failed" and state.attempts >= self.settings.max_file_attempts:
                    abandoned += 1
                    log.warning(
                        "%s: failed %d times; no longer retried (see its error in ss_report_files)",
                        item.label,
                        state.attempts,
                    )
                    continue
                todo.append(item)
        return todo, abandoned

    # ---- one file -------------------------------------------------------------------------------

    # ---- bookkeeping ----------------------------------------------------------------------------

    @staticmethod
    def _count(totals: audit.RunTotals, outcome: FileOutcome) -> None:
        totals.bytes_downloaded += outcome.size_bytes
        if outcome.status == "loaded" and outcome.stats is not None:
            stats = outcome.stats
            totals.files_loaded += 1
            totals.rows_read += stats.rows_read
            totals.rows_inserted += stats.inserted
            totals.rows_duplicate += stats.duplicates
            totals.rows_rejected += stats.rejected
        elif outcome.status == "failed":
            totals.files_failed += 1
            totals.errors.append(f"{outcome.label}: {outcome.error}")

    @staticmethod
    def _error_summary(totals: audit.RunTotals, status: str) -> str | None:
        if status == "success" or not totals.errors:
            return None if status != "interrupted" else "interrupted by a shutdown request"
        head = f"{totals.files_failed} of {totals.files_new} files failed; " if totals.files_failed else ""
        return redact(head + "; ".join(totals.errors))

    @staticmethod
    def _observe(result: RunResult, started: datetime) -> None:
        metrics.CYCLES.labels(result.status).inc()
        metrics.CYCLE_SECONDS.observe((datetime.now(UTC) - started).total_seconds())
        if result.status == "success":
            metrics.LAST_SUCCESS.set(datetime.now(UTC).timestamp())
        for outcome in result.files:
            metrics.FILES.labels(outcome.status).inc()
            if outcome.stats is not None:
                metrics.ROWS.labels(outcome.report_type, "inserted").inc(outcome.stats.inserted)
                metrics.ROWS.labels(outcome.report_type, "duplicate").inc(outcome.stats.duplicates)
                metrics.ROWS.labels(outcome.report_type, "rejected").inc(outcome.stats.rejected)
