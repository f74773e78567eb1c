"""The service loop's decisions: timing, first-start backfill, failure isolation, the lock and standby."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest
from prometheus_client import REGISTRY

from ingestor.catalog import load_catalog
from ingestor.config import Settings, load_settings
from ingestor.db.connect import Database
from ingestor.db.lock import IngestionLock
from ingestor.errors import DatabaseUnavailableError
from ingestor.pipeline import RunResult
from ingestor.service.health import HealthState
from ingestor.service.scheduler import BACKFILL, SCHEDULED, LockStatus, Scheduler

from fixtures.pg import make_partitions

TODAY = date(2026, 11, 20)
SUCCESSFUL_ONCE = "INSERT INTO ss_ingestion_log (status, kind, run_finished) VALUES ('success', 'once', now())"


class FakeIngestor:
    """Windows like the pipeline's; ``run`` records its calls and answers or raises what it is told."""

    def __init__(self, settings: Settings, outcome: str | BaseException = "success") -> None:
        self.settings = settings
        self.catalog = load_catalog()
        self.outcome = outcome
        self.calls: list[tuple[str, tuple[date, date]]] = []
        self.after_run: threading.Event | None = None
        self.client = None  # the feed check asks no API

    def cycle_window(self) -> tuple[date, date]:
        return TODAY - timedelta(days=self.settings.lookback_days), TODAY

    def backfill_window(self, days: int) -> tuple[date, date]:
        return TODAY - timedelta(days=days), TODAY

    def run(self, kind: str, window: tuple[date, date]) -> RunResult:
        self.calls.append((kind, window))
        if self.after_run is not None:
            self.after_run.set()
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        from ingestor.audit import RunTotals

        return RunResult(len(self.calls), kind, self.outcome, window, RunTotals())


def settings(**env: str) -> Settings:
    return load_settings({"INGEST_INTERVAL_MINUTES": "15", "INGEST_JITTER_SECONDS": "30", **env}, env_file=None)


@pytest.fixture
def db(migrated_db_url: str) -> Iterator[Database]:
    database = Database(migrated_db_url)
    yield database
    database.close()


def make(db: Database, outcome: str | BaseException = "success", **kwargs: Any) -> tuple[Scheduler, FakeIngestor]:
    config = settings(BACKFILL_DAYS="5")
    fake = FakeIngestor(config, outcome)
    scheduler = Scheduler(config, db, fake, HealthState(), threading.Event(), **kwargs)  # type: ignore[arg-type]
    return scheduler, fake


def execute(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(query)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def cycles(status: str) -> float:
    return REGISTRY.get_sample_value("shadowserver_ingestor_cycles_total", {"status": status}) or 0.0


def test_the_next_cycle_is_one_interval_plus_jitter_after_the_last_start_and_never_in_the_past() -> None:
    now = [1000.0]
    config = settings()
    none: Any = None  # the timing rule needs neither a database, nor an ingestor, nor a lock
    scheduler = Scheduler(
        config, none, none, HealthState(), threading.Event(), lock=none, rng=random.Random(7), clock=lambda: now[0]
    )
    delays = [scheduler.next_due(1000.0) - 1000.0 for _ in range(200)]
    assert all(900.0 <= delay <= 930.0 for delay in delays) and max(delays) - min(delays) > 20
    now[0] = 5000.0  # the cycle ran longer than the interval: the next one starts at once
    assert scheduler.next_due(1000.0) == 5000.0


def test_a_database_without_a_successful_run_is_backfilled_then_cycles_cover_the_lookback(
    db: Database, migrated_db_url: str
) -> None:
    scheduler, fake = make(db)
    assert scheduler.plan() == (BACKFILL, (TODAY - timedelta(days=5), TODAY))
    execute(migrated_db_url, "INSERT INTO ss_ingestion_log (status, kind) VALUES ('error', 'backfill')")
    assert scheduler.plan()[0] == BACKFILL  # a failed first start is still a first start
    execute(migrated_db_url, SUCCESSFUL_ONCE)
    assert scheduler.plan() == (SCHEDULED, fake.cycle_window())


def test_a_cycle_that_raises_is_recorded_as_failed_and_counted_not_raised(db: Database) -> None:
    scheduler, fake = make(db, DatabaseUnavailableError("cannot connect to PostgreSQL u@h:5432/d"))
    before = cycles("error")
    record = scheduler.run_cycle()
    assert record.status == "error" and "DatabaseUnavailableError: cannot connect" in (record.error or "")
    assert cycles("error") == before + 1
    assert scheduler.state.snapshot().consecutive_failures == 1
    fake.outcome = RuntimeError("a bug")
    assert scheduler.run_cycle().error == "unexpected RuntimeError: a bug"
    fake.outcome = "success"
    assert scheduler.run_cycle().status == "success"
    assert scheduler.state.snapshot().consecutive_failures == 0


def test_a_held_lock_means_standby_until_it_is_free_then_stale_runs_are_closed(
    db: Database, migrated_db_url: str
) -> None:
    execute(migrated_db_url, "INSERT INTO ss_ingestion_log (status, kind) VALUES ('running', 'scheduled')")
    other = IngestionLock(db)
    assert other.try_acquire()
    scheduler, _ = make(db)
    scheduler.lock_retry = 0.05
    scheduler.stop.set()  # acquire() returns instead of waiting
    assert scheduler.acquire() is LockStatus.STANDBY
    assert scheduler.state.standby
    assert execute(migrated_db_url, "SELECT status FROM ss_ingestion_log") == [("running",)]  # not ours to close
    other.release()
    scheduler.stop.clear()
    assert scheduler.acquire() is LockStatus.HELD
    assert not scheduler.state.standby
    assert execute(migrated_db_url, "SELECT status FROM ss_ingestion_log") == [("interrupted",)]
    scheduler.lock.release()


def test_an_unreachable_database_is_a_failed_cycle_not_a_crash() -> None:
    unreachable = Database("postgresql://u:pw@127.0.0.1:1/nowhere?connect_timeout=2")
    try:
        scheduler, fake = make(unreachable)
        assert scheduler.acquire() is LockStatus.UNAVAILABLE
        record = scheduler.record_unavailable()
        assert record.status == "error" and record.error and record.error.startswith("database unreachable: ")
        assert "pw@" not in record.error and fake.calls == []
    finally:
        unreachable.close()


def test_serve_runs_the_first_cycle_at_once_and_returns_on_stop_releasing_the_lock(db: Database) -> None:
    scheduler, fake = make(db)
    fake.after_run = scheduler.stop  # stop right after the first cycle
    scheduler.serve()
    assert [kind for kind, _ in fake.calls] == [BACKFILL]
    assert not scheduler.lock.held
    probe = IngestionLock(db)
    assert probe.try_acquire()
    probe.release()


def test_retention_runs_after_a_cycle_at_most_every_few_hours_and_is_not_a_cycle(
    db: Database, migrated_db_url: str
) -> None:
    now = [0.0]
    config = settings(BACKFILL_DAYS="5", RETENTION_DAYS="30")
    scheduler = Scheduler(config, db, FakeIngestor(config), HealthState(), threading.Event(), clock=lambda: now[0])  # type: ignore[arg-type]
    insert = (
        "INSERT INTO ss_events (report_type, report_date, raw_data, event_hash)"
        " VALUES ('scan_ssl', current_date - {age}, '{{}}', md5(random()::text))"
    )
    with psycopg.connect(migrated_db_url, autocommit=True) as conn:
        today = date.today()
        make_partitions(conn, today - timedelta(days=400), today)
    for age in (400, 31, 29, 0):
        execute(migrated_db_url, insert.format(age=age))
    pruned = scheduler.apply_retention()
    assert pruned is not None and pruned.status == "success"  # (dropped partitions are counted from ss_reports)
    assert execute(migrated_db_url, "SELECT count(*) FROM ss_events") == [(2,)]
    with psycopg.connect(migrated_db_url, autocommit=True) as conn:  # the prune dropped the old partitions
        make_partitions(conn, date.today() - timedelta(days=100))
    execute(migrated_db_url, insert.format(age=100))
    now[0] += 3600.0
    assert scheduler.apply_retention() is None  # too soon
    now[0] += 6 * 3600.0
    assert scheduler.apply_retention() is not None
    assert execute(migrated_db_url, "SELECT count(*) FROM ss_events") == [(2,)]
    assert execute(migrated_db_url, "SELECT DISTINCT kind, status FROM ss_maintenance_log") == [("prune", "success")]
    assert execute(migrated_db_url, "SELECT count(*) FROM ss_ingestion_log") == [(0,)]  # IRIS's card: ingestion only
    assert scheduler.plan()[0] == BACKFILL  # a prune is not an ingestion cycle


def test_retention_is_off_by_default(db: Database) -> None:
    scheduler, _ = make(db)
    assert scheduler.apply_retention() is None
