"""``shadowserver-ingestor run`` as a subprocess against the simulator and a real PostgreSQL.

Cycles every 1.2 s (INGEST_INTERVAL_MINUTES=0.02); every wait polls with a deadline.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from ingestor.db.embedded import EmbeddedPostgres
from ingestor.simulator import Faults

from fixtures.pg import FAST_SETTINGS, make_base_dir
from fixtures.sim import RunningSimulator

pytestmark = pytest.mark.slow

STOP_BOUND = 8.0  # STOP_TIMEOUT_SECONDS (the default)
TYPES = ("scan_ssl", "event4_sinkhole", "blocklist")
PORT_LINE = re.compile(r"health server listening on http://[\d.]+:(\d+)")


class Service:
    """One ``run`` process, its log file and its health port."""

    def __init__(
        self, env: dict[str, str], log_path: Path, cwd: Path, module: str = "ingestor", options: tuple[str, ...] = ()
    ) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        args = [sys.executable, "-m", module, *(["run"] if module == "ingestor" else []), *options]
        self.proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT)
        self._port: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    @property
    def port(self) -> int:
        if self._port is None:
            match = wait_for(lambda: PORT_LINE.search(self.log()), "the health server's port", self)
            self._port = int(match.group(1))
        return self._port

    def request(self, path: str, method: str = "GET") -> httpx.Response:
        return httpx.request(method, f"http://127.0.0.1:{self.port}{path}", timeout=10)

    def health(self) -> httpx.Response:
        return self.request("/health")

    def terminate(self) -> tuple[int, float]:
        """SIGTERM; the exit code and the seconds it took to exit."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(STOP_BOUND + 5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"no exit {STOP_BOUND + 5} s after SIGTERM\n{self.tail()}") from None
        return code, time.monotonic() - started

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


def wait_for(condition: Callable[[], Any], what: str, service: Service | None = None, timeout: float = 20.0) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with the service's log otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if service is not None and service.proc.poll() is not None:
            raise AssertionError(f"the service exited ({service.proc.returncode}) waiting for {what}\n{service.tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{service.tail() if service else ''}")
        time.sleep(0.1)


def rows(url: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


def scalar(url: str, query: str, params: tuple[Any, ...] = ()) -> Any:
    return rows(url, query, params)[0][0]


def restart_until_loaded(start_service: Callable[..., Service], sim: Any, url: str) -> None:
    """Start the service again, wait for one of its runs to succeed, and stop it cleanly (exit 0)."""
    again = start_service(sim, url, BACKFILL_DAYS="0")
    wait_for(
        lambda: any(status == "success" for _, status, pid, _ in runs(url) if pid == again.pid),
        "the restarted service to load the file",
        again,
    )
    assert again.terminate()[0] == 0


def runs(url: str) -> list[tuple[str, str, int, str | None]]:
    """(kind, status, pid, error_message) of every run, oldest first."""
    return rows(url, "SELECT kind, status, pid, error_message FROM ss_ingestion_log ORDER BY id")  # type: ignore[return-value]


def ground_truth(sim: RunningSimulator) -> int:
    return sum(report.row_count for report in sim.reports())


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """Factory: ``start_service(sim, db_url, **env_overrides)``; every process is killed at teardown."""
    started: list[Service] = []

    def start(
        sim: RunningSimulator, db_url: str, module: str = "ingestor", options: tuple[str, ...] = (), **overrides: str
    ) -> Service:
        env = {
            **os.environ,
            **sim.env,
            "DATABASE_URL": db_url,
            "INGEST_INTERVAL_MINUTES": "0.02",
            "INGEST_JITTER_SECONDS": "0",
            "REQUEST_DELAY_SECONDS": "0",
            "SS_MAX_RETRIES": "0",
            "SS_LOOKBACK_DAYS": "1",
            "BACKFILL_DAYS": "2",
            "HEALTH_HOST": "127.0.0.1",
            "HEALTH_PORT": "0",
            "HEALTH_FAILED_CYCLES": "2",
            "STOP_TIMEOUT_SECONDS": str(STOP_BOUND),
            "LOG_FORMAT": "text",
            "LOG_LEVEL": "INFO",
            **overrides,
        }
        service = Service(env, tmp_path / f"service-{len(started)}.log", tmp_path, module, options)
        started.append(service)
        return service

    yield start
    for service in started:
        service.close()


def test_first_start_backfills_then_schedules_serves_health_and_metrics_and_a_restart_does_not_backfill(
    make_simulator: Callable[..., RunningSimulator], migrated_db_url: str, start_service: Callable[..., Service]
) -> None:
    sim = make_simulator(today=None, days=3, types=TYPES, rows=12)
    first = start_service(sim, migrated_db_url)
    wait_for(
        lambda: sum(1 for kind, status, *_ in runs(migrated_db_url) if (kind, status) == ("scheduled", "success")) >= 2,
        "a backfill and two scheduled cycles",
        first,
    )
    history = runs(migrated_db_url)
    assert history[0][:2] == ("backfill", "success")
    assert {kind for kind, *_ in history[1:]} == {"scheduled"}
    assert scalar(migrated_db_url, "SELECT count(*) FROM ss_events") == ground_truth(sim) == 9 * 12

    health = first.health()
    body = health.json()
    assert health.status_code == 200, body
    assert body["status"] == "ok" and body["database_reachable"] is True and body["standby"] is False
    assert body["last_success_at"] is not None and body["last_success_age_seconds"] < 10
    assert body["last_cycle"]["status"] == "success" and body["consecutive_failures"] == 0
    head = first.request("/health", "HEAD")
    assert head.status_code == 200 and head.content == b""
    assert first.request("/livez").status_code == 200

    exposition = first.request("/metrics")
    assert exposition.status_code == 200 and exposition.headers["content-type"].startswith("text/plain")
    text = exposition.text
    assert metric_sum(text, "shadowserver_ingestor_rows_total", outcome="inserted") == ground_truth(sim)
    assert metric_sum(text, "shadowserver_ingestor_rows_total", outcome="inserted", report_type="blocklist") == 36
    assert metric_sum(text, "shadowserver_ingestor_cycles_total", status="success") >= 3
    assert metric_sum(text, "shadowserver_ingestor_files_total", outcome="loaded") == 9
    assert "shadowserver_ingestor_healthy 1.0" in text
    assert "shadowserver_ingestor_last_success_timestamp_seconds" in text

    assert first.terminate()[0] == 0
    before = len(runs(migrated_db_url))
    second = start_service(sim, migrated_db_url)
    wait_for(
        lambda: any(pid == second.pid and status == "success" for _, status, pid, _ in runs(migrated_db_url)),
        "a successful cycle of the restarted service",
        second,
    )
    assert next(kind for kind, _, pid, _ in runs(migrated_db_url) if pid == second.pid) == "scheduled"
    assert [kind for kind, *_ in runs(migrated_db_url)].count("backfill") == 1
    assert len(runs(migrated_db_url)) > before
    assert scalar(migrated_db_url, "SELECT count(*) FROM ss_events") == ground_truth(sim)
    assert second.health().json()["status"] == "ok"
    assert second.terminate()[0] == 0
    logs = first.log() + second.log()
    assert not [report.file for report in sim.reports() if report.id in logs]  # ids are bearer capabilities
    assert scalar(migrated_db_url, "SELECT count(*) FROM ss_ingestion_log WHERE status = 'running'") == 0


def test_sigterm_mid_download_exits_cleanly_and_the_next_start_loads_the_file_whole(
    make_simulator: Callable[..., RunningSimulator], migrated_db_url: str, start_service: Callable[..., Service]
) -> None:
    sim = make_simulator(today=None, days=1, types=("scan_ssl",), rows=300, faults=Faults(stream_rate=20_000))
    (report,) = sim.reports()
    assert len(sim.sim.content(report)) > 15 * 20_000  # the download would take over 15 s
    service = start_service(sim, migrated_db_url, BACKFILL_DAYS="0")
    wait_for(lambda: sim.counters.downloads_started() == 1, "the download to start", service)
    wait_for(
        lambda: scalar(migrated_db_url, "SELECT count(*) FROM ss_report_files WHERE status = 'loading'") == 1,
        "the file to be claimed",
        service,
    )
    time.sleep(1.0)  # well inside the download
    code, seconds = service.terminate()
    print(f"\nexit {code} {seconds:.2f} s after SIGTERM mid-download")
    assert code == 0, service.tail()
    assert seconds < STOP_BOUND
    assert sim.counters.downloads_completed() == 0
    assert "SIGTERM received" in service.log() and "stopped cleanly" in service.log()
    assert report.id not in service.log()
    assert runs(migrated_db_url) == [("backfill", "interrupted", service.pid, "interrupted by a shutdown request")]
    assert rows(migrated_db_url, "SELECT status FROM ss_report_files") == [("interrupted",)]
    assert scalar(migrated_db_url, "SELECT count(*) FROM ss_events") == 0

    sim.faults.clear()
    restart_until_loaded(start_service, sim, migrated_db_url)
    assert runs(migrated_db_url)[1][:2] == ("backfill", "success")  # still no success before: backfill again
    assert rows(migrated_db_url, "SELECT status, attempts, rows_read, rows_inserted FROM ss_report_files") == [
        ("loaded", 2, report.row_count, report.row_count)
    ]
    assert scalar(migrated_db_url, "SELECT count(*) FROM ss_events") == report.row_count
    assert scalar(migrated_db_url, "SELECT count(DISTINCT event_hash) FROM ss_events") == report.row_count


def test_a_second_instance_stands_by_without_ingesting_and_takes_over_when_the_first_stops(
    make_simulator: Callable[..., RunningSimulator], migrated_db_url: str, start_service: Callable[..., Service]
) -> None:
    sim = make_simulator(today=None, days=3, types=TYPES, rows=12)
    first = start_service(sim, migrated_db_url)
    wait_for(lambda: any(status == "success" for _, status, *_ in runs(migrated_db_url)), "the first success", first)
    second = start_service(sim, migrated_db_url, module="ingestor.main")  # v1.0.0's entry point, no flags
    wait_for(lambda: "standing by" in second.log(), "the second instance to stand by", second)
    health = second.health()
    assert health.status_code == 200 and health.json()["standby"] is True and health.json()["status"] == "standby"
    seen = len(runs(migrated_db_url))
    wait_for(lambda: len(runs(migrated_db_url)) >= seen + 3, "three more cycles of the first instance", first)
    assert {pid for *_, pid, _ in runs(migrated_db_url)} == {first.pid}
    assert sim.counters.downloads_started() == 9

    assert first.terminate()[0] == 0
    wait_for(
        lambda: any(pid == second.pid and status == "success" for _, status, pid, _ in runs(migrated_db_url)),
        "the second instance to take over",
        second,
    )
    assert "takes over" in second.log()
    body = second.health().json()
    assert body["standby"] is False and body["status"] == "ok"
    assert second.terminate()[0] == 0
    assert sim.counters.downloads_started() == 9  # nothing downloaded twice
    assert scalar(migrated_db_url, "SELECT count(*) FROM ss_events") == ground_truth(sim)
    assert scalar(migrated_db_url, "SELECT max(attempts) FROM ss_report_files") == 1


@pytest.mark.parametrize("status", [401, 503])
def test_api_failures_turn_health_503_and_the_audit_error_then_both_recover(
    status: int,
    make_simulator: Callable[..., RunningSimulator],
    fresh_db_url: str,
    start_service: Callable[..., Service],
) -> None:
    sim = make_simulator(today=None, days=2, types=("scan_ssl",), rows=5, faults=Faults(force_status=status))
    options = ("--interval", "0.02", "--health-port", "0")  # the command line wins over the environment
    service = start_service(sim, fresh_db_url, options=options, INGEST_INTERVAL_MINUTES="60", HEALTH_PORT="1")
    failing = wait_for(
        lambda: (r := service.health()).status_code == 503 and r.json()["consecutive_failures"] >= 2 and r,
        "health to turn 503",
        service,
    )
    body = failing.json()
    assert body["status"] == "unhealthy" and "the last" in " ".join(body["reasons"])
    assert body["last_cycle"]["status"] == "error" and str(status) in body["last_cycle"]["error"]
    assert service.request("/health", "HEAD").status_code == 503
    errors = [r for r in runs(fresh_db_url) if r[1] == "error"]
    assert len(errors) >= 2 and all(str(status) in (message or "") for *_, message in errors)
    assert all(kind == "backfill" for kind, *_ in errors)  # nothing succeeded yet: still the first start

    sim.faults.clear()
    recovered = wait_for(
        lambda: (r := service.health()).status_code == 200 and r.json()["status"] == "ok" and r, "recovery", service
    )
    assert recovered.json()["consecutive_failures"] == 0
    assert ("backfill", "success") in [r[:2] for r in runs(fresh_db_url)]
    assert scalar(fresh_db_url, "SELECT count(*) FROM ss_events") == ground_truth(sim)
    assert service.terminate()[0] == 0


def test_a_shutdown_stuck_in_a_hung_download_is_bounded_by_the_watchdog_and_recovered_at_the_next_start(
    make_simulator: Callable[..., RunningSimulator], migrated_db_url: str, start_service: Callable[..., Service]
) -> None:
    sim = make_simulator(today=None, days=1, types=("scan_ssl",), rows=20, faults=Faults(download_latency=20))
    (report,) = sim.reports()
    service = start_service(sim, migrated_db_url, BACKFILL_DAYS="0", STOP_TIMEOUT_SECONDS="2")
    wait_for(
        lambda: scalar(migrated_db_url, "SELECT count(*) FROM ss_report_files WHERE status = 'loading'") == 1,
        "the file to be claimed",
        service,
    )
    # The request has reached the simulator: the client now waits for response headers that do not come.
    wait_for(lambda: sim.counters.downloads_requested(report.id) == 1, "the download request", service)
    code, _ = service.terminate()  # bounded: terminate() fails the test if the process outlives the bound
    assert code == 1, service.tail()  # the forced path: only the watchdog, at STOP_TIMEOUT_SECONDS, exits 1
    assert "did not finish within STOP_TIMEOUT_SECONDS=2.0 s; forcing exit" in service.log()
    assert [r[1] for r in runs(migrated_db_url)] == ["running"]  # left for the next start to close

    sim.faults.clear()
    restart_until_loaded(start_service, sim, migrated_db_url)
    first_run = runs(migrated_db_url)[0]
    assert first_run[1] == "interrupted" and "stopped before the run finished" in (first_run[3] or "")
    assert rows(migrated_db_url, "SELECT status, attempts FROM ss_report_files") == [("loaded", 2)]
    assert scalar(migrated_db_url, "SELECT count(*) FROM ss_events") == report.row_count


def test_a_database_outage_is_survived_reported_and_recovered_from(
    make_simulator: Callable[..., RunningSimulator], start_service: Callable[..., Service]
) -> None:
    base = make_base_dir("ssi-outage-")
    server = EmbeddedPostgres(base / "pgdata", db_name="outage", settings=FAST_SETTINGS)
    try:
        url = server.start()
        sim = make_simulator(today=None, days=2, types=("scan_ssl",), rows=5)
        service = start_service(sim, url)
        wait_for(lambda: service.health().json()["status"] == "ok", "a first successful cycle", service)

        server.stop()
        down = wait_for(
            lambda: (r := service.health()).status_code == 503 and r.json()["consecutive_failures"] >= 2 and r,
            "health to report the outage",
            service,
        )
        body = down.json()
        assert body["database_reachable"] is False and body["reasons"][0].startswith("database unreachable")
        assert body["last_cycle"]["status"] == "error" and "database" in body["last_cycle"]["error"]
        assert body["last_success_at"] is not None  # history survives the outage
        assert service.request("/livez").status_code == 200

        server.start()  # same socket, same URL
        seen = len(runs(url))
        wait_for(
            lambda: (r := service.health()).status_code == 200 and r.json()["consecutive_failures"] == 0,
            "recovery after the database is back",
            service,
        )
        assert len(runs(url)) > seen and runs(url)[-1][1] == "success"
        assert "lost the ingestion lock" in service.log() and "database reachable again" in service.log()
        assert service.terminate()[0] == 0
        assert scalar(url, "SELECT count(*) FROM ss_events") == ground_truth(sim)
        assert scalar(url, "SELECT count(*) FROM ss_ingestion_log WHERE status = 'running'") == 0
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
