"""``shadowserver-ingestor run`` as a subprocess against the simulator and a real PostgreSQL.

Cycles every 1.2 s (INGEST_INTERVAL_MINUTES=0.02); every wait polls with a deadline.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import Any

import pytest

from ingestor.db.embedded import EmbeddedPostgres
from ingestor.simulator import Faults

from fixtures.pg import FAST_SETTINGS, make_base_dir
from fixtures.service import STOP_BOUND, Service, ground_truth, rows, runs, scalar, wait_for
from fixtures.sim import RunningSimulator

pytestmark = pytest.mark.slow

TYPES = ("scan_ssl", "event4_sinkhole", "blocklist")


def restart_until_loaded(start_service: Callable[..., Service], sim: Any, url: str) -> None:
    """Start the service again, wait for one of its runs to succeed, and stop it cleanly (exit 0)."""
    again = start_service(sim, url, BACKFILL_DAYS="0")
    wait_for(
        lambda: any(status == "success" for _, status, pid, _ in runs(url) if pid == again.pid),
        "the restarted service to load the file",
        again,
    )
    assert again.terminate()[0] == 0


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


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
