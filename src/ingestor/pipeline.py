"""One ingestion run: list a date window, skip files already loaded, then download and load each new file
in its own transaction, recording everything in the ledger and the audit log.

A failing file is recorded as failed and retried on a later run; it never stops the other files. A stop
request (SIGTERM) abandons the current file cleanly: its transaction is rolled back and it is marked
``interrupted``, to be loaded whole next time.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol

import psycopg

from ingestor import audit, ledger, metrics
from ingestor.api.client import DownloadResult, ReportItem, ShadowserverClient
from ingestor.catalog import Catalog, load_catalog
from ingestor.config import Settings
from ingestor.db.connect import Database
from ingestor.errors import (
    ApiError,
    DatabaseError,
    DiskSpaceError,
    DownloadError,
    IngestorError,
    ReportFileError,
    StopRequested,
)
from ingestor.load import LoadStats, load_report
from ingestor.logs import log_context
from ingestor.parse.worker import shared_worker
from ingestor.redaction import REDACTOR, redact

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
    if totals.files_failed:
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
        with self.db.connection() as conn:
            run_id = audit.start_run(conn, kind, window)
        result = RunResult(run_id, kind, "running", window, totals)
        started = datetime.now(UTC)
        interrupted = fatal = False
        with log_context(run_id=run_id):
            if window:
                log.info("%s run: window %s to %s", kind, window[0], window[1])
            try:
                sources = discover()
                totals.reports_found = len(sources)
                todo, result.files_abandoned = (sources, 0) if force else self._new_files(sources)
                totals.files_new = len(todo)
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
            with self.db.connection() as conn:
                audit.finish_run(conn, run_id, result.status, totals, result.error)
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

    def _list(self, window: tuple[date, date], client: ShadowserverClient) -> list[ReportItem]:
        settings = self.settings
        REDACTOR.begin_window()  # ids of earlier listings are forgotten (the last one's stay redactable)
        items, invalid = client.list_reports(
            window[0],
            window[1],
            subscriptions=settings.subscriptions,
            types=settings.report_types,
            limit=settings.list_limit,
        )
        if len(items) + invalid >= settings.list_limit and window[0] != window[1]:
            log.warning("listing hit SS_LIST_LIMIT=%d; listing the window day by day", settings.list_limit)
            items, invalid = [], 0
            day = window[0]
            while day <= window[1]:
                day_items, day_invalid = client.list_reports(
                    day,
                    day,
                    subscriptions=settings.subscriptions,
                    types=settings.report_types,
                    limit=settings.list_limit,
                )
                if len(day_items) + day_invalid >= settings.list_limit:
                    log.warning(
                        "listing %s returned SS_LIST_LIMIT=%d files: some may be missing; raise it",
                        day,
                        settings.list_limit,
                    )
                items += day_items
                invalid += day_invalid
                day += timedelta(days=1)
        if invalid:
            log.warning("ignored %d unusable entries in the report listing", invalid)
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
        with log_context(report_type=source.report_type, report_date=source.report_date.isoformat()):
            with self.db.connection() as conn:
                file_id = ledger.claim_file(
                    conn,
                    source=source.source,
                    source_key=source.source_key,
                    report_type=source.report_type,
                    report_date=source.report_date,
                    file_name=source.file_name,
                    subscription=source.subscription,
                    run_id=run_id,
                )
                self.reporter.file_started(source.label, None)
                with tempfile.NamedTemporaryFile(
                    prefix="ss-report-", suffix=".csv", dir=self.settings.work_dir
                ) as spool:
                    outcome = self._fetch_and_load(conn, source, file_id, spool)
            self.reporter.file_finished(outcome)
            return outcome

    def _fetch_and_load(
        self, conn: psycopg.Connection[Any], source: ReportSource, file_id: int, spool: IO[bytes]
    ) -> FileOutcome:
        outcome = FileOutcome(source.label, source.report_type, source.report_date, "failed")
        fetched = None
        try:
            shared_worker()  # starts the parse worker (on the first file) while the download runs
            fetched = source.fetch(spool)
            spool.flush()
            outcome.size_bytes = fetched.size
            with conn.transaction():
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
        except (DownloadError, ApiError, ReportFileError, DiskSpaceError) as exc:
            outcome.error = str(exc)
            log.error("%s: %s", source.label, exc)
        except psycopg.OperationalError:
            raise
        except (IngestorError, psycopg.Error, ValueError, UnicodeError, OSError) as exc:
            outcome.error = f"{type(exc).__name__}: {exc}"
            log.error("%s: loading failed: %s", source.label, outcome.error)
        except Exception as exc:  # a bug must not stop the other files; it is recorded with its type
            outcome.error = f"unexpected {type(exc).__name__}: {exc}"
            log.exception("%s: unexpected failure", source.label)
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
