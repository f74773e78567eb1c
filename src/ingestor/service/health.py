"""What ``/health`` says, and why.

:class:`HealthState` is written by the scheduler thread (cycle results, standby) and read by the HTTP
threads. :class:`DatabaseProbe` checks the database live (cached for a few seconds) and reads the last
successful run from ``ss_ingestion_log``, so a restarted process keeps its history and a standby
instance sees the active one's progress. :func:`evaluate` turns both into a :class:`HealthReport`:

* 503 when the database is unreachable;
* 503 when no cycle succeeded within ``HEALTH_MAX_AGE_FACTOR`` x ``INGEST_INTERVAL_MINUTES``, measured
  from the last success recorded in the database, or from the process start when there has never been
  one (a first start's backfill is given until that deadline);
* 503 when the last ``HEALTH_FAILED_CYCLES`` cycles of this process failed (``error``, or could not run);
* 200 otherwise: ``ok``, ``degraded`` (the last cycle failed or was partial, or the feed itself looks wrong:
  ``warnings`` lists the alarms of ``picture/feed.py``), ``starting`` (no cycle finished yet) or
  ``standby``. A standby instance is judged by the database check alone: it does not ingest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from ingestor import audit, metrics
from ingestor.config import Settings
from ingestor.redaction import first_line, redact

log = logging.getLogger(__name__)

FAILED_STATUSES = frozenset({"error"})
"""Cycle statuses that count as failed; ``partial`` loaded something, ``interrupted`` is a shutdown."""

DEGRADED_STATUSES = FAILED_STATUSES | {"partial"}
"""A healthy service whose last cycle ended so says ``degraded`` (still 200)."""

MAX_ERROR_CHARS = 500


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class CycleRecord:
    """The outcome of one cycle of this process."""

    kind: str
    status: str
    finished_at: datetime
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        error = redact(self.error)[:MAX_ERROR_CHARS] if self.error else None
        return {"kind": self.kind, "status": self.status, "finished_at": _iso(self.finished_at), "error": error}


@dataclass(frozen=True)
class Snapshot:
    """A consistent copy of :class:`HealthState`."""

    started_at: datetime
    standby: bool = False
    cycle_running: bool = False
    last_cycle: CycleRecord | None = None
    last_success_at: datetime | None = None
    consecutive_failures: int = 0
    feed_alarms: tuple[str, ...] = ()


class HealthState:
    """The service's own view: cycles of this process, standby, start time. Thread-safe."""

    def __init__(self, started_at: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._snapshot = Snapshot(started_at or utc_now())
        metrics.CONSECUTIVE_FAILURES.set(0)
        metrics.STANDBY.set(0)

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._snapshot

    @property
    def standby(self) -> bool:
        return self.snapshot().standby

    def set_standby(self, standby: bool) -> None:
        with self._lock:
            self._snapshot = replace(self._snapshot, standby=standby)
        metrics.STANDBY.set(1 if standby else 0)

    def set_feed_alarms(self, alarms: tuple[str, ...]) -> None:
        """The alarms on the feed found after the last cycle (none: an empty tuple)."""
        with self._lock:
            self._snapshot = replace(self._snapshot, feed_alarms=alarms)

    def cycle_started(self) -> None:
        with self._lock:
            self._snapshot = replace(self._snapshot, cycle_running=True)

    def cycle_finished(self, record: CycleRecord) -> None:
        """Record a finished (or failed-to-run) cycle; failures count up, a success or partial resets."""
        with self._lock:
            current = self._snapshot
            failures = current.consecutive_failures
            if record.status in FAILED_STATUSES:
                failures += 1
            elif record.status != "interrupted":
                failures = 0
            self._snapshot = replace(
                current,
                cycle_running=False,
                last_cycle=record,
                consecutive_failures=failures,
                last_success_at=record.finished_at if record.status == "success" else current.last_success_at,
            )
        metrics.CONSECUTIVE_FAILURES.set(failures)


@dataclass(frozen=True)
class DatabaseStatus:
    """What the last database probe found."""

    reachable: bool
    last_success_at: datetime | None = None
    error: str | None = None


class DatabaseProbe:
    """Checks the database on a short-lived connection of its own, at most every ``ttl`` seconds.

    A failed probe keeps the last success it knew, so that an outage does not erase history, and calls
    ``on_unreachable`` (which must not block).
    """

    def __init__(
        self, conninfo: str, *, ttl: float = 2.0, timeout: int = 3, on_unreachable: Callable[[], None] | None = None
    ) -> None:
        self._conninfo = conninfo
        self._on_unreachable = on_unreachable
        self._ttl = ttl
        self._timeout = timeout
        self._lock = threading.Lock()
        self._checked = float("-inf")
        self._status = DatabaseStatus(reachable=False, error="not checked yet")

    def status(self) -> DatabaseStatus:
        """The cached status, refreshed when older than ``ttl``; while one request refreshes it, the
        others answer from the cache instead of queueing behind the database."""
        if time.monotonic() - self._checked < self._ttl:
            return self._status
        if not self._lock.acquire(blocking=self._checked == float("-inf")):
            return self._status
        try:
            if time.monotonic() - self._checked >= self._ttl:
                self._status = self._check(self._status.last_success_at)
                self._checked = time.monotonic()
                if not self._status.reachable and self._on_unreachable is not None:
                    self._on_unreachable()  # e.g. start the embedded server again
            return self._status
        finally:
            self._lock.release()

    def _check(self, known_success: datetime | None) -> DatabaseStatus:
        try:
            with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=self._timeout) as conn:
                conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{self._timeout}s",))
                try:
                    last_success = audit.last_success(conn)
                except psycopg.errors.UndefinedTable:  # not migrated yet: reachable, no history
                    last_success = None
        except (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable):  # connected, but the query waited
            slow = f"slow: reading the last success took over {self._timeout} s (is ss_ingestion_log locked?)"
            return DatabaseStatus(reachable=True, last_success_at=known_success, error=slow)
        except psycopg.Error as exc:
            return DatabaseStatus(reachable=False, last_success_at=known_success, error=first_line(exc))
        return DatabaseStatus(reachable=True, last_success_at=last_success)


@dataclass(frozen=True)
class HealthPolicy:
    """The thresholds of :func:`evaluate`, from the settings."""

    interval: timedelta
    max_age_factor: float = 3.0
    failed_cycles: int = 3

    @classmethod
    def from_settings(cls, settings: Settings) -> HealthPolicy:
        return cls(settings.interval, settings.health_max_age_factor, settings.health_failed_cycles)

    @property
    def max_age(self) -> timedelta:
        return self.interval * self.max_age_factor


@dataclass(frozen=True)
class HealthReport:
    """A health verdict: the HTTP status and the JSON body of ``/health``."""

    healthy: bool
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def http_status(self) -> int:
        return 200 if self.healthy else 503


def latest_success(snapshot: Snapshot, database: DatabaseStatus) -> datetime | None:
    """The newest success known: recorded in the database (any instance) or seen by this process."""
    successes = [t for t in (database.last_success_at, snapshot.last_success_at) if t is not None]
    return max(successes) if successes else None


def evaluate(snapshot: Snapshot, database: DatabaseStatus, policy: HealthPolicy, now: datetime) -> HealthReport:
    """Apply the rules of this module's docstring."""
    reasons: list[str] = []
    if not database.reachable:
        reasons.append(f"database unreachable: {database.error or 'unknown error'}")
    last_success = latest_success(snapshot, database)
    if not snapshot.standby:
        reference = last_success or snapshot.started_at
        if now - reference > policy.max_age:
            since = "the last success" if last_success else "the start (no cycle has ever succeeded)"
            reasons.append(
                f"no successful cycle for {(now - reference).total_seconds():.0f} s since {since}"
                f" (limit {policy.max_age.total_seconds():.0f} s)"
            )
        if snapshot.consecutive_failures >= policy.failed_cycles:
            reasons.append(f"the last {snapshot.consecutive_failures} cycles failed")
    if reasons:
        status = "unhealthy"
    elif snapshot.standby:
        status = "standby"
    elif snapshot.last_cycle is None:
        status = "starting"
    else:
        degraded = snapshot.last_cycle.status in DEGRADED_STATUSES or bool(snapshot.feed_alarms)
        status = "degraded" if degraded else "ok"
    body: dict[str, Any] = {
        "status": status,
        "reasons": reasons,
        "warnings": list(snapshot.feed_alarms),
        "last_success_at": _iso(last_success),
        "last_success_age_seconds": round((now - last_success).total_seconds(), 1) if last_success else None,
        "last_cycle": snapshot.last_cycle.as_json() if snapshot.last_cycle else None,
        "consecutive_failures": snapshot.consecutive_failures,
        "database_reachable": database.reachable,
        "database_error": database.error,
        "standby": snapshot.standby,
        "cycle_running": snapshot.cycle_running,
        "interval_minutes": policy.interval.total_seconds() / 60,
        "max_age_seconds": policy.max_age.total_seconds(),
        "started_at": _iso(snapshot.started_at),
    }
    return HealthReport(not reasons, body)


class HealthCheck:
    """Evaluates health on demand from the state and the probe, and mirrors it in the metrics."""

    def __init__(self, state: HealthState, probe: DatabaseProbe, policy: HealthPolicy) -> None:
        self.state = state
        self.probe = probe
        self.policy = policy

    def report(self) -> HealthReport:
        database = self.probe.status()
        snapshot = self.state.snapshot()
        report = evaluate(snapshot, database, self.policy, utc_now())
        metrics.HEALTHY.set(1 if report.healthy else 0)
        metrics.DATABASE_REACHABLE.set(1 if database.reachable else 0)
        last_success = latest_success(snapshot, database)
        if last_success is not None:  # after a restart, or in standby, the database knows it
            metrics.LAST_SUCCESS.set(last_success.timestamp())
        return report


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else None
