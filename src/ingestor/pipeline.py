"""One ingestion run: list a date window, skip files already loaded, then download and load each new file
in its own transaction, recording everything in the ledger and the audit log.

A failing file is recorded as failed and retried on a later run; it never stops the other files. That
includes the database errors of one file (a deadlock, a lock or statement timeout, a refused value: see
``db/errors.py``); only a lost connection or an unreachable server ends the run, which is then recorded as
``error`` with the file it was loading ``interrupted`` (or, if the database is still away, by the next
start). A stop request (SIGTERM) abandons the current file cleanly: its running statement is cancelled,
its transaction rolled back, and it is marked ``interrupted``, to be loaded whole next time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol

import psycopg

from ingestor import audit, ledger, metrics, spool
from ingestor.api.client import DownloadResult, ReportItem, ShadowserverClient
from ingestor.catalog import Catalog, load_catalog
from ingestor.config import Settings
from ingestor.db.connect import Database
from ingestor.db.errors import is_fatal, wrap_exceptions
from ingestor.errors import (
    ApiError,
    DatabaseError,
    DatabaseTimeoutError,
    DownloadError,
    IngestorError,
    StopRequested,
)
from ingestor.load import LoadStats, load_report
from ingestor.logs import log_context
from ingestor.parse.worker import shared_worker
from ingestor.redaction import first_line, redact

log = logging.getLogger(__name__)


def utc_today() -> date:
    return datetime.now(UTC).date()


class ReportSource(Protocol):
    """A report file to load: a file listed by the API, or a local file being imported."""

    @property
    def label(self) -> str: ...
    @property
    def report_type(self) -> str: ...
    @property
    def report_date(self) -> date: ...
    @property
    def file_name(self) -> str: ...
    @property
    def subscription(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def source_key(self) -> str: ...

    def fetch(self, spool: IO[bytes]) -> DownloadResult:
        """Write the file's bytes into ``spool``; raise DownloadError or ReportFileError."""
        ...


@dataclass(frozen=True)
class ApiReport:
    """A file listed by ``reports/list``, fetched from the download host."""

    item: ReportItem
    client: ShadowserverClient = field(repr=False)
    source: str = "api"

    @property
    def label(self) -> str:
        return self.item.label

    @property
    def report_type(self) -> str:
        return self.item.type

    @property
    def report_date(self) -> date:
        return self.item.date

    @property
    def file_name(self) -> str:
        return self.item.file

    @property
    def subscription(self) -> str:
        return self.item.subscription

    @property
    def source_key(self) -> str:
        return ledger.api_source_key(self.item.id)

    def fetch(self, spool: IO[bytes]) -> DownloadResult:
        return self.client.download(self.item, spool)


@dataclass
class FileOutcome:
    """What became of one file in a run."""

    label: str
    report_type: str
    report_date: date
    status: str  # loaded | failed | interrupted
    stats: LoadStats | None = None
    size_bytes: int = 0
    error: str | None = None


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


class _Listing:
    """A window listed in parts small enough that ``limit`` cuts none of them (see ``Ingestor._list``)."""

    def __init__(self, client: ShadowserverClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.invalid = 0
        self.cut: list[str] = []
        """Parts that returned ``limit`` entries and could not be split further."""

    def complete(self, start: date, end: date) -> list[ReportItem]:
        items, whole = self._list(start, end, self.settings.report_types, self.settings.subscriptions)
        if whole:
            return items
        log.warning(
            "listing %s to %s hit SS_LIST_LIMIT=%d; listing it day by day", start, end, self.settings.list_limit
        )
        found: list[ReportItem] = []
        day = start
        while day <= end:
            found += self._day(day)
            day += timedelta(days=1)
        return found

    def _list(
        self, start: date, end: date, types: Sequence[str], subscriptions: Sequence[str]
    ) -> tuple[list[ReportItem], bool]:
        """The items of one listing call, and whether it is whole (fewer than ``limit`` entries came back)."""
        limit = self.settings.list_limit
        items, invalid = self.client.list_reports(start, end, subscriptions=subscriptions, types=types, limit=limit)
        self.invalid += invalid
        return items, len(items) + invalid < limit

    def _day(self, day: date) -> list[ReportItem]:
        items, whole = self._list(day, day, self.settings.report_types, self.settings.subscriptions)
        if whole:
            return items
        types = self.settings.report_types or [str(name) for name in self.client.report_types(day.isoformat())]
        log.warning("listing %s hit SS_LIST_LIMIT; listing its %d report types one by one", day, len(types))
        found: list[ReportItem] = []
        for report_type in types:
            found += self._type(day, report_type)
        return found

    def _type(self, day: date, report_type: str) -> list[ReportItem]:
        items, whole = self._list(day, day, [report_type], self.settings.subscriptions)
        if whole:
            return items
        subscriptions = self.settings.subscriptions or self.client.subscribed()
        if len(subscriptions) <= 1:
            self.cut.append(f"{day} {report_type}")
            return items
        found: list[ReportItem] = []
        for subscription in subscriptions:
            part, whole = self._list(day, day, [report_type], [subscription])
            if not whole:
                self.cut.append(f"{day} {report_type} of subscription {subscription}")
            found += part
        return found


class Reporter(Protocol):
    """Receives progress; the CLI shows it on a terminal, the service ignores it."""

    def files_planned(self, count: int) -> None: ...
    def file_started(self, item_label: str, size_hint: int | None) -> None: ...
    def rows_loaded(self, rows: int) -> None: ...
    def file_finished(self, outcome: FileOutcome) -> None: ...


class NullReporter:
    def files_planned(self, count: int) -> None:
        pass

    def file_started(self, item_label: str, size_hint: int | None) -> None:
        pass

    def rows_loaded(self, rows: int) -> None:
        pass

    def file_finished(self, outcome: FileOutcome) -> None:
        pass


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
        self._loading: int | None = None
        """The ledger id of the file being loaded, until its outcome is recorded."""
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
        self._loading = None
        self._listing_cut = []
        with log_context(run_id=run_id):
            if window:
                log.info("%s run: window %s to %s", kind, window[0], window[1])
            try:
                sources = discover()
                totals.errors.extend(self._listing_cut)
                totals.listing_incomplete = bool(self._listing_cut)
                totals.reports_found = len(sources)
                todo, result.files_abandoned = (sources, 0) if force else self._new_files(sources)
                totals.files_new = len(todo)
                with self.db.connection() as conn:  # what a crash leaves behind still says what was listed
                    audit.note_listing(conn, run_id, totals)
                self.reporter.files_planned(len(todo))
                for position, source in enumerate(todo):
                    if self.stop.is_set():
                        interrupted = True
                        break
                    outcome = self._process(source, run_id)
                    result.files.append(outcome)
                    self._count(totals, outcome)
                    if outcome.status == "interrupted":
                        interrupted = True
                        break
                    if position + 1 < len(todo) and delay:
                        self.stop.wait(delay)
            except StopRequested:
                interrupted = True
            except (ApiError, DatabaseError) as exc:
                fatal = True
                totals.errors.insert(0, str(exc))
                log.error("run failed: %s", exc)
            result.status = run_status(totals, interrupted, fatal)
            result.error = self._error_summary(totals, result.status)
            self._record_end(result)
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

    def _record_end(self, result: RunResult) -> None:
        """Close the run's audit row, and mark the file a lost connection left ``loading`` as interrupted.

        After a lost connection the server may still be away: then the next start closes both (with the
        counts of the files the run committed, which the ledger knows).
        """
        assert result.run_id is not None
        try:
            with self.db.connection(timeout=5.0) as conn:
                if self._loading is not None:
                    ledger.mark_failed(conn, self._loading, result.error or "the run ended", interrupted=True)
                audit.finish_run(conn, result.run_id, result.status, result.totals, result.error)
            self._loading = None
        except DatabaseError as exc:
            log.warning(
                "cannot record the end of run %d (%s); the next start closes it as interrupted",
                result.run_id,
                first_line(exc),
            )

    def _list(self, window: tuple[date, date], client: ShadowserverClient) -> list[ReportItem]:
        """Every file of the window. ``reports/list`` has a ``limit`` and no pages: a listing that returns
        ``limit`` entries may have been cut, so it is split (by day, then by report type, then by
        subscription) until every part is below the limit; a part that cannot be split further is kept and
        the run says it may be incomplete."""
        listing = _Listing(client, self.settings)
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
        return self._filter(items)

    def _filter(self, items: Iterable[ReportItem]) -> list[ReportItem]:
        wanted_types = set(self.settings.report_types)
        wanted_subscriptions = set(self.settings.subscriptions)
        unique: dict[str, ReportItem] = {}
        for item in items:
            if wanted_types and item.type not in wanted_types:
                continue
            if wanted_subscriptions and item.subscription and item.subscription not in wanted_subscriptions:
                continue
            unique.setdefault(ledger.api_source_key(item.id), item)
        return sorted(unique.values(), key=lambda item: (item.date, item.type, item.file))

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

    def _process(self, source: ReportSource, run_id: int) -> FileOutcome:
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
                self._loading = file_id  # until its fate is recorded: a lost connection leaves it to _record_end
                self.reporter.file_started(source.label, None)
                with spool.open_spool(self.settings.work_dir) as spooled:
                    outcome = self._fetch_and_load(conn, source, file_id, spooled)
                self._loading = None
            self.reporter.file_finished(outcome)
            return outcome

    def _fetch_and_load(
        self, conn: psycopg.Connection[Any], source: ReportSource, file_id: int, spool: IO[bytes]
    ) -> FileOutcome:
        outcome = FileOutcome(source.label, self.catalog.canonical(source.report_type), source.report_date, "failed")
        fetched = None
        try:
            shared_worker()  # starts the parse worker (on the first file) while the download runs
            fetched = source.fetch(spool)
            spool.flush()
            outcome.size_bytes = fetched.size
            with wrap_exceptions(stop=self.stop), conn.transaction():
                stats = load_report(
                    conn,
                    Path(spool.name),
                    report_type=source.report_type,
                    report_date=source.report_date,
                    file_id=file_id,
                    catalog=self.catalog,
                    batch_rows=self.settings.batch_rows,
                    stop=self.stop,
                    progress=self.reporter.rows_loaded,
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
        except (DownloadError, ApiError) as exc:
            outcome.error = str(exc)
            log.error("%s: %s", source.label, exc)
        except DatabaseError as exc:
            if is_fatal(exc):
                raise  # the connection is gone or the role cannot write: the run ends
            outcome.error = f"database: {exc}{self._lock_holders(conn, exc)}"
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

    @staticmethod
    def _lock_holders(conn: psycopg.Connection[Any], exc: DatabaseError) -> str:
        """For a lock timeout, who holds locks on our tables that block writing (empty if unknown)."""
        if not isinstance(exc, DatabaseTimeoutError) or not isinstance(exc.__cause__, psycopg.errors.LockNotAvailable):
            return ""
        try:
            holders = ledger.lock_holders(conn)
        except psycopg.Error:
            return ""
        return f" (held by {'; '.join(holders)})" if holders else " (held by another transaction)"

    def _log_loaded(self, source: ReportSource, stats: LoadStats) -> None:
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
