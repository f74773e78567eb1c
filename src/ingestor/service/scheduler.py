"""The service loop: one thread, one cycle at a time, every ``INGEST_INTERVAL_MINUTES`` (plus jitter).

* The first cycle starts right after start-up. If ``ss_ingestion_log`` has no ``success`` row at all
  (a real first start, or a first start that never completed), the cycle is a backfill of
  ``BACKFILL_DAYS`` days; otherwise it covers the lookback window. The decision is read from the
  database each time, so a restart does not backfill again.
* Only the holder of the ingestion lock ingests. While another instance holds it, this one stands by
  and tries again every few seconds, then takes over as soon as the lock is free. Before every cycle
  the lock's connection is checked (a database restart drops the lock) and the lock taken again.
  After taking it, runs and files a dead process left open are closed as ``interrupted``.
* Each cycle starts with the catalog in force: one refreshed by ``catalog refresh`` since the last
  cycle is used from this one on, without a restart.
* With ``NOTIFY_ENABLED``, the notification digests that the cycle made due are sent after it
  (``notify/run.py``), under the same guarantees as ``notify``; a failure there is logged, never fatal.
* Nothing stops the loop but a stop request: an unreachable database or API, or a bug in a cycle, is
  logged, counted and shown by ``/health``, and the next cycle comes at the next interval.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import date

import psycopg

from ingestor import audit, metrics
from ingestor.catalog import load_catalog
from ingestor.config import Settings
from ingestor.db.connect import Database
from ingestor.db.lock import IngestionLock
from ingestor.db.migrate import migrate
from ingestor.errors import DatabaseError, DatabaseUnavailableError, IngestorError
from ingestor.notify.run import NotifyOptions, NotifyResult, notify
from ingestor.ops import retention
from ingestor.ops.retention import PruneResult
from ingestor.picture import feed
from ingestor.pipeline import Ingestor
from ingestor.redaction import first_line, redact
from ingestor.service.health import CycleRecord, HealthState, utc_now

log = logging.getLogger(__name__)

LOCK_RETRY_SECONDS = 5.0
"""How often a standby instance tries the ingestion lock (at most; shorter intervals retry sooner)."""
DB_RETRY_SECONDS = 5.0
"""How often the start-up schema check is retried while the database is unreachable."""
RETENTION_EVERY_SECONDS = 6 * 3600.0
"""How often the service applies RETENTION_DAYS (after a cycle, at most this often)."""

SCHEDULED = "scheduled"
BACKFILL = "backfill"


class LockStatus(enum.Enum):
    HELD = "held"
    STANDBY = "standby"
    UNAVAILABLE = "unavailable"


class Scheduler:
    """Runs cycles of ``ingestor`` until ``stop`` is set."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        ingestor: Ingestor,
        state: HealthState,
        stop: threading.Event,
        *,
        lock: IngestionLock | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.db = db
        self.ingestor = ingestor
        self.state = state
        self.stop = stop
        self.lock = lock or IngestionLock(db)
        self.rng = rng or random.Random()
        self.clock = clock
        self.interval = settings.interval.total_seconds()
        self.lock_retry = min(LOCK_RETRY_SECONDS, self.interval)
        self._recovered = False
        self._db_problem: str | None = None
        self._last_retention: float | None = None

    # ---- the loop -------------------------------------------------------------------------------

    def serve(self) -> None:
        """Prepare the schema, then run cycles until a stop is requested; release the lock at the end."""
        try:
            if not self.prepare_database():
                return
            next_due = self.clock()
            while not self.stop.wait(max(0.0, next_due - self.clock())):
                status = self.acquire()
                if status is LockStatus.STANDBY:  # only returned once a stop was requested
                    break
                started = self.clock()
                if status is LockStatus.HELD:
                    self.run_cycle()
                    self.apply_retention()
                    self.check_feed()
                    self.send_digests()
                else:
                    self.record_unavailable()
                next_due = self.next_due(started)
                log.debug("next cycle in %.1f s", max(0.0, next_due - self.clock()))
        finally:
            self.lock.release()

    def next_due(self, started: float) -> float:
        """When the next cycle starts: one interval after the last one started, plus jitter; never in
        the past (a cycle longer than the interval is followed at once, without catching up)."""
        delay = self.interval + self.rng.uniform(0.0, self.settings.jitter_seconds)
        return max(started + delay, self.clock())

    # ---- start-up -------------------------------------------------------------------------------

    def prepare_database(self) -> bool:
        """Bring the schema up to date, retrying while the database is unreachable; False if stopped.

        Other failures (permissions, a migration that does not apply) are raised: retrying cannot fix them.
        """
        while not self.stop.is_set():
            try:
                with self.db.connection(timeout=DB_RETRY_SECONDS) as conn:
                    applied = migrate(conn, self.settings.viewer_role)
            except (DatabaseUnavailableError, psycopg.OperationalError) as exc:
                self._database_down(exc, f"cannot check the schema; retrying every {DB_RETRY_SECONDS:.0f} s")
                self.stop.wait(DB_RETRY_SECONDS)
                continue
            log.debug("schema up to date (%d migration(s) applied now)", len(applied))
            self._database_up()
            return True
        return False

    # ---- the ingestion lock ---------------------------------------------------------------------

    def acquire(self) -> LockStatus:
        """Hold the ingestion lock, standing by while another instance holds it.

        Returns ``HELD``, ``UNAVAILABLE`` (the database cannot be reached) or, only when a stop was
        requested meanwhile, ``STANDBY``.
        """
        while True:
            status = self._try_lock()
            if status is not LockStatus.STANDBY or self.stop.wait(self.lock_retry):
                return status

    def _try_lock(self) -> LockStatus:
        if self.lock.held:
            if self.lock.still_held():
                return LockStatus.HELD
            log.warning("lost the ingestion lock (did the database restart?); taking it again")
            self._recovered = False
        try:
            acquired = self.lock.try_acquire()
        except (DatabaseError, psycopg.Error) as exc:
            self._database_down(exc, "cannot take the ingestion lock")
            return LockStatus.UNAVAILABLE
        if not acquired:
            if not self.state.standby:
                log.warning(
                    "another instance holds the ingestion lock (%s): standing by, trying again every %.0f s",
                    self.lock.holder() or "holder unknown",
                    self.lock_retry,
                )
                self.state.set_standby(True)
            return LockStatus.STANDBY
        if self.state.standby:
            log.info("the ingestion lock is free: this instance takes over")
            self.state.set_standby(False)
        else:
            log.info("holding the ingestion lock")
        if not self._recovered:
            try:
                with self.db.connection() as conn:
                    audit.recover_stale(conn)
            except (DatabaseError, psycopg.Error) as exc:
                self._database_down(exc, "cannot close runs left open by a stopped process")
                return LockStatus.UNAVAILABLE
            self._recovered = True
        self._database_up()
        return LockStatus.HELD

    # ---- cycles ---------------------------------------------------------------------------------

    def plan(self) -> tuple[str, tuple[date, date]]:
        """The kind and window of the next cycle: a backfill until one cycle has ever succeeded."""
        with self.db.connection() as conn:
            ever_succeeded = audit.last_success(conn) is not None
        if ever_succeeded:
            return SCHEDULED, self.ingestor.cycle_window()
        log.info(
            "no successful run recorded in this database yet: backfilling BACKFILL_DAYS=%d day(s)",
            self.settings.backfill_days,
        )
        return BACKFILL, self.ingestor.backfill_window(self.settings.backfill_days)

    def run_cycle(self) -> CycleRecord:
        """Run one cycle; its failure is recorded, never raised."""
        self.state.cycle_started()
        kind = SCHEDULED
        try:
            self.reload_catalog()
            kind, window = self.plan()
            result = self.ingestor.run(kind, window)
            record = CycleRecord(kind, result.status, utc_now(), result.error)
        except (IngestorError, psycopg.Error, OSError) as exc:
            record = self._failed(kind, f"{type(exc).__name__}: {first_line(exc)}")
        except Exception as exc:  # a bug must not end the service; it is logged with its traceback
            log.exception("%s cycle failed unexpectedly", kind)
            record = self._failed(kind, f"unexpected {type(exc).__name__}: {first_line(exc)}")
        self.state.cycle_finished(record)
        return record

    def reload_catalog(self) -> None:
        """Use the catalog in force (``load_catalog()`` reads the data directory's file again only when it
        changed, so this costs a ``stat`` per cycle)."""
        catalog = load_catalog()
        if catalog is not self.ingestor.catalog:
            where = catalog.path or "the one shipped with the package"
            log.info("catalog changed: using %s (%d report types) from this cycle on", where, len(catalog))
            self.ingestor.catalog = catalog

    def apply_retention(self) -> PruneResult | None:
        """Prune events older than RETENTION_DAYS, after a cycle and at most every few hours; never raises."""
        if self.settings.retention_days <= 0 or self.stop.is_set():
            return None
        now = self.clock()
        if self._last_retention is not None and now - self._last_retention < RETENTION_EVERY_SECONDS:
            return None
        self._last_retention = now
        try:
            result = retention.apply_retention(self.db, self.settings, stop=self.stop)
        except (IngestorError, psycopg.Error) as exc:
            log.warning("retention skipped this time: %s", first_line(exc))
            return None
        if result is not None and result.events:
            log.info("retention: %d event(s) older than %s deleted (%s)", result.events, result.cutoff, result.status)
        return result

    def check_feed(self) -> list[feed.Alarm]:
        """The alarms on the feed itself (a type that stopped arriving, empty cycles, no subscriptions), into
        /health's warnings and the metrics, with the open findings per type; never raises."""
        try:
            with self.db.connection() as conn:
                alarms = feed.feed_alarms(conn, self.settings, utc_now(), self.ingestor.client)
                feed.observe(conn, alarms)
        except (IngestorError, psycopg.Error) as exc:
            log.warning("cannot check the feed this time: %s", first_line(exc))
            return []
        messages = tuple(alarm.message for alarm in alarms)
        if messages != self.state.snapshot().feed_alarms:
            for message in messages:
                log.warning("feed: %s", message)
        self.state.set_feed_alarms(messages)
        return alarms

    def send_digests(self) -> NotifyResult | None:
        """Send the digests that are due (``NOTIFY_ENABLED``), after a cycle; never raises."""
        if not self.settings.notify_enabled or self.stop.is_set():
            return None
        try:
            result = notify(self.settings, self.db, self.ingestor.catalog, NotifyOptions(), stop=self.stop)
        except (IngestorError, psycopg.Error, OSError) as exc:
            log.warning("digests not sent this time: %s", first_line(exc))
            return None
        if result.prepared or result.sent or result.failed:
            log.info(
                "digests: %d prepared, %d sent (%d retried), %d failed",
                result.prepared,
                result.sent,
                result.retried,
                result.failed,
            )
        for line in result.in_doubt:
            log.warning("digest in doubt (may have been delivered; see docs/notifications.md): %s", line)
        return result

    def record_unavailable(self) -> CycleRecord:
        """Count a cycle that could not start because the database is unreachable."""
        self.state.cycle_started()
        record = self._failed(SCHEDULED, f"database unreachable: {self._db_problem or 'unknown error'}")
        self.state.cycle_finished(record)
        return record

    def _failed(self, kind: str, error: str) -> CycleRecord:
        metrics.CYCLES.labels("error").inc()
        error = redact(error)
        log.error("%s cycle could not run: %s; next attempt in about %.0f s", kind, error, self.interval)
        return CycleRecord(kind, "error", utc_now(), error)

    # ---- database availability, logged on change -------------------------------------------------

    def _database_down(self, exc: BaseException, doing: str) -> None:
        self.db.ensure_server()  # the embedded server's supervisor may have died: start one; a no-op otherwise
        problem = first_line(exc)
        if problem != self._db_problem:
            log.warning("database unavailable (%s): %s", doing, problem)
        else:
            log.debug("database still unavailable (%s): %s", doing, problem)
        self._db_problem = problem

    def _database_up(self) -> None:
        if self._db_problem is not None:
            log.info("database reachable again")
        self._db_problem = None
