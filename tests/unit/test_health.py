"""Health rules, the HTTP endpoints, the database probe, the shutdown watchdog and the HEALTHCHECK client."""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from prometheus_client import REGISTRY

from ingestor import metrics
from ingestor.errors import PortInUseError
from ingestor.redaction import REDACTOR
from ingestor.service import healthcheck
from ingestor.service.health import (
    CycleRecord,
    DatabaseProbe,
    DatabaseStatus,
    HealthCheck,
    HealthPolicy,
    HealthReport,
    HealthState,
    Snapshot,
    evaluate,
)
from ingestor.service.httpd import HealthServer
from ingestor.service.watchdog import FORCED_EXIT_CODE, ShutdownWatchdog

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
POLICY = HealthPolicy(interval=timedelta(minutes=15), max_age_factor=3.0, failed_cycles=3)  # max age 45 min
UP = DatabaseStatus(reachable=True)


def gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value(f"shadowserver_ingestor_{name}")


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def cycle(status: str, minutes_ago: float = 1, error: str | None = None) -> CycleRecord:
    return CycleRecord("scheduled", status, ago(minutes_ago), error)


# ---- the rules ----------------------------------------------------------------------------------


def test_a_recent_success_in_the_database_is_healthy() -> None:
    report = evaluate(Snapshot(ago(60), last_cycle=cycle("success")), DatabaseStatus(True, ago(10)), POLICY, NOW)
    assert report.http_status == 200
    assert report.body["status"] == "ok" and report.body["reasons"] == []
    assert report.body["last_success_age_seconds"] == 600.0
    assert report.body["last_success_at"] == "2026-11-20T11:50:00+00:00"
    assert report.body["interval_minutes"] == 15 and report.body["database_reachable"] is True


def test_an_unreachable_database_is_unhealthy_whatever_else_is_true() -> None:
    down = DatabaseStatus(False, ago(1), "connection refused")
    report = evaluate(Snapshot(ago(5), last_cycle=cycle("success")), down, POLICY, NOW)
    assert report.http_status == 503 and report.body["status"] == "unhealthy"
    assert report.body["reasons"] == ["database unreachable: connection refused"]
    assert report.body["database_reachable"] is False


def test_no_success_within_the_max_age_is_unhealthy_even_right_after_a_restart() -> None:
    restarted = Snapshot(started_at=ago(1))  # the history in the database is what counts
    report = evaluate(restarted, DatabaseStatus(True, ago(46)), POLICY, NOW)
    assert report.http_status == 503
    assert report.body["reasons"] == ["no successful cycle for 2760 s since the last success (limit 2700 s)"]
    assert evaluate(restarted, DatabaseStatus(True, ago(44)), POLICY, NOW).http_status == 200


def test_a_first_start_is_measured_from_the_process_start_until_its_deadline() -> None:
    backfilling = Snapshot(started_at=ago(44), cycle_running=True)
    report = evaluate(backfilling, UP, POLICY, NOW)
    assert report.http_status == 200 and report.body["status"] == "starting"
    assert report.body["last_success_at"] is None and report.body["cycle_running"] is True
    late = evaluate(Snapshot(started_at=ago(46), cycle_running=True), UP, POLICY, NOW)
    assert late.http_status == 503 and "no cycle has ever succeeded" in late.body["reasons"][0]


def test_the_last_n_failed_cycles_make_it_unhealthy_and_fewer_only_degraded() -> None:
    success = DatabaseStatus(True, ago(5))
    failed = Snapshot(ago(60), last_cycle=cycle("error", error="boom"), consecutive_failures=3)
    report = evaluate(failed, success, POLICY, NOW)
    assert report.http_status == 503 and report.body["reasons"] == ["the last 3 cycles failed"]
    two = evaluate(Snapshot(ago(60), last_cycle=cycle("error"), consecutive_failures=2), success, POLICY, NOW)
    assert two.http_status == 200 and two.body["status"] == "degraded"
    partial = evaluate(Snapshot(ago(60), last_cycle=cycle("partial")), success, POLICY, NOW)
    assert partial.http_status == 200 and partial.body["status"] == "degraded"


def test_alarms_on_the_feed_make_it_degraded_never_down() -> None:
    alarm = "scan_rdp arrived on 7 of the 7 report days before 2026-11-20 and not on 2026-11-20"
    snapshot = Snapshot(ago(60), last_cycle=cycle("success"), feed_alarms=(alarm,))
    report = evaluate(snapshot, DatabaseStatus(True, ago(10)), POLICY, NOW)
    assert (report.http_status, report.body["status"], report.body["warnings"]) == (200, "degraded", [alarm])
    assert report.body["reasons"] == []
    quiet = evaluate(Snapshot(ago(60), last_cycle=cycle("success")), DatabaseStatus(True, ago(10)), POLICY, NOW)
    assert (quiet.body["status"], quiet.body["warnings"]) == ("ok", [])


def test_standby_is_judged_by_the_database_alone() -> None:
    standby = Snapshot(ago(600), standby=True, consecutive_failures=5)
    report = evaluate(standby, DatabaseStatus(True, ago(300)), POLICY, NOW)
    assert report.http_status == 200 and report.body["status"] == "standby" and report.body["standby"] is True
    assert evaluate(standby, DatabaseStatus(False, None, "down"), POLICY, NOW).http_status == 503


def test_an_own_success_newer_than_the_probed_one_counts() -> None:
    snapshot = Snapshot(ago(60), last_cycle=cycle("success", 0.5), last_success_at=ago(0.5))
    report = evaluate(snapshot, DatabaseStatus(True, ago(50)), POLICY, NOW)
    assert report.http_status == 200 and report.body["last_success_age_seconds"] == 30.0


def test_the_last_error_is_redacted_and_bounded() -> None:
    secret_id = "Zq8xK2mNp4Lr7Tv9Wb3Yc6Hd1Jf5Gs0Ae"
    REDACTOR.add(secret_id)
    error = f"download of {secret_id} failed at https://dl.example.org/{secret_id} " + "x" * 2000
    body = cycle("error", error=error).as_json()
    assert secret_id not in body["error"] and "dl.example.org/<redacted>" in body["error"]
    assert len(body["error"]) <= 500


# ---- the state ----------------------------------------------------------------------------------


def test_failures_count_up_and_success_or_partial_reset_them_while_interrupted_leaves_them() -> None:
    state = HealthState(started_at=ago(10))
    for status, expected in [("error", 1), ("error", 2), ("interrupted", 2), ("partial", 0), ("error", 1)]:
        state.cycle_started()
        assert state.snapshot().cycle_running
        state.cycle_finished(cycle(status, 0))
        assert state.snapshot().consecutive_failures == expected
        assert gauge("consecutive_failed_cycles") == expected
    assert state.snapshot().last_success_at is None and not state.snapshot().cycle_running
    state.cycle_finished(cycle("success", 0))
    assert state.snapshot().last_success_at == NOW and state.snapshot().consecutive_failures == 0


def test_standby_is_mirrored_in_the_metrics() -> None:
    state = HealthState()
    state.set_standby(True)
    assert state.standby and gauge("standby") == 1
    state.set_standby(False)
    assert not state.standby and gauge("standby") == 0


def test_the_check_mirrors_health_and_the_recorded_last_success_in_the_metrics() -> None:
    recorded = datetime.now(UTC) - timedelta(minutes=1)

    class Probe(DatabaseProbe):
        def status(self) -> DatabaseStatus:
            return DatabaseStatus(True, recorded)

    check = HealthCheck(HealthState(), Probe(""), POLICY)
    assert check.report().body["status"] == "starting"
    assert gauge("healthy") == 1 and gauge("database_reachable") == 1
    assert gauge("last_success_timestamp_seconds") == recorded.timestamp()


# ---- the database probe -------------------------------------------------------------------------


def test_the_probe_reads_the_last_success_and_caches_it(migrated_db_url: str) -> None:
    probe = DatabaseProbe(migrated_db_url, ttl=60)
    assert probe.status() == DatabaseStatus(reachable=True, last_success_at=None)
    with psycopg.connect(migrated_db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO ss_ingestion_log (status, run_finished) VALUES ('success', NOW())")
    assert probe.status().last_success_at is None  # cached
    fresh = DatabaseProbe(migrated_db_url, ttl=0).status()
    assert fresh.reachable and fresh.last_success_at is not None


def test_the_probe_reports_an_empty_database_as_reachable(fresh_db_url: str) -> None:
    assert DatabaseProbe(fresh_db_url).status() == DatabaseStatus(reachable=True, last_success_at=None)


def test_the_probe_reports_an_unreachable_database_without_its_password() -> None:
    probe = DatabaseProbe("postgresql://ingestor:hunter2secret@127.0.0.1:1/nowhere", ttl=0, timeout=2)
    status = probe.status()
    assert not status.reachable and status.error and "hunter2secret" not in status.error


def test_the_probe_asks_for_the_database_when_unreachable_and_only_then(migrated_db_url: str) -> None:
    asked: list[str] = []
    up = DatabaseProbe(migrated_db_url, ttl=0, on_unreachable=lambda: asked.append("up"))
    nowhere = "postgresql://u@127.0.0.1:1/nowhere"
    down = DatabaseProbe(nowhere, ttl=0, timeout=2, on_unreachable=lambda: asked.append("down"))
    assert up.status().reachable and not down.status().reachable
    assert asked == ["down"]  # what revives the embedded server (Database.ensure_server)


# ---- the endpoints ------------------------------------------------------------------------------


class FixedCheck(HealthCheck):
    """A health check that answers what the test says."""

    def __init__(self, report: HealthReport) -> None:
        self.fixed = report

    def report(self) -> HealthReport:
        metrics.HEALTHY.set(1 if self.fixed.healthy else 0)
        return self.fixed


@pytest.fixture
def serve() -> Iterator[Callable[[HealthReport], HealthServer]]:
    servers: list[HealthServer] = []

    def start(report: HealthReport) -> HealthServer:
        servers.append(HealthServer("127.0.0.1", 0, FixedCheck(report)).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def test_health_answers_200_or_503_with_json_and_head_without_a_body(
    serve: Callable[[HealthReport], HealthServer],
) -> None:
    healthy = serve(HealthReport(True, {"status": "ok"}))
    assert healthy.port > 0 and healthy.url == f"http://127.0.0.1:{healthy.port}"
    response = httpx.get(healthy.url + "/health?verbose=1")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response.headers["content-type"] == "application/json"
    head = httpx.head(healthy.url + "/health")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(response.content)

    sick = serve(HealthReport(False, {"status": "unhealthy"}))
    assert httpx.get(sick.url + "/health").status_code == 503
    assert httpx.head(sick.url + "/health").status_code == 503
    assert httpx.get(sick.url + "/livez").status_code == 200  # liveness ignores health


def test_metrics_are_the_prometheus_exposition(serve: Callable[[HealthReport], HealthServer]) -> None:
    server = serve(HealthReport(False, {}))
    response = httpx.get(server.url + "/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=")
    assert "shadowserver_ingestor_healthy 0.0" in response.text
    assert "# TYPE shadowserver_ingestor_cycles_total counter" in response.text


def test_unknown_paths_are_404_and_other_methods_405(serve: Callable[[HealthReport], HealthServer]) -> None:
    server = serve(HealthReport(True, {}))
    assert httpx.get(server.url + "/").status_code == 404
    assert httpx.get(server.url + "/healthz").status_code == 404
    refused = httpx.post(server.url + "/health", content=b"{}")
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
    assert httpx.delete(server.url + "/metrics").status_code == 405
    assert httpx.post(server.url + "/nothing").status_code == 404
    assert httpx.get(server.url + "/livez").headers["server"] == "shadowserver-ingestor"


def test_a_taken_port_is_said_to_be_in_use(serve: Callable[[HealthReport], HealthServer]) -> None:
    server = serve(HealthReport(True, {}))
    with pytest.raises(PortInUseError, match=f"port in use: HEALTH_PORT {server.port} ") as caught:
        HealthServer("127.0.0.1", server.port, FixedCheck(HealthReport(True, {})))
    assert caught.value.exit_code == 2 and "invalid configuration" not in str(caught.value)


def test_the_healthcheck_client_exits_0_only_on_200(
    serve: Callable[[HealthReport], HealthServer], capsys: pytest.CaptureFixture[str]
) -> None:
    healthy = serve(HealthReport(True, {"status": "ok"}))
    sick = serve(HealthReport(False, {"status": "unhealthy"}))
    assert healthcheck.main(["--port", str(healthy.port)]) == 0
    assert healthcheck.main(["--port", str(sick.port)]) == 1
    assert '"unhealthy"' in capsys.readouterr().out
    sick.stop()
    assert healthcheck.main(["--port", str(sick.port), "--timeout", "2"]) == 1
    assert "unreachable" in capsys.readouterr().out


def test_the_healthcheck_client_reads_health_port_and_probes_wildcards_on_loopback(
    monkeypatch: pytest.MonkeyPatch, serve: Callable[[HealthReport], HealthServer]
) -> None:
    server = serve(HealthReport(True, {}))
    monkeypatch.setenv("HEALTH_PORT", str(server.port))
    monkeypatch.setenv("HEALTH_HOST", "0.0.0.0")
    assert healthcheck.main([]) == 0
    assert healthcheck.probe_url("::", 8088, "/health") == "http://[::1]:8088/health"
    assert healthcheck.probe_url("10.1.2.3", 9000, "/livez") == "http://10.1.2.3:9000/livez"


# ---- the watchdog -------------------------------------------------------------------------------


def test_the_watchdog_fires_when_a_stop_overruns_its_bound() -> None:
    stop, fired = threading.Event(), threading.Event()
    codes: list[int] = []

    def expire(code: int) -> None:
        codes.append(code)
        fired.set()

    now = [100.0]
    watchdog = ShutdownWatchdog(stop, 0.2, on_expire=expire, clock=lambda: now[0])
    watchdog.start()
    assert watchdog.elapsed() is None and not fired.is_set()  # no stop requested: nothing to bound
    started = time.monotonic()
    stop.set()
    assert fired.wait(10) and codes == [FORCED_EXIT_CODE]
    assert time.monotonic() - started >= 0.2, "not before the bound"  # a lower bound: Event.wait never returns early
    now[0] = 103.5
    assert watchdog.elapsed() == 3.5  # seconds since the stop, by the watchdog's clock


def test_the_watchdog_counts_the_bound_from_the_stop_request() -> None:
    """A stop noticed late (here: its whole 60 s bound already gone by the clock) fires at once."""
    stop, fired = threading.Event(), threading.Event()
    readings = iter([100.0])  # the stop is noticed at 100.0; every later reading is 160.0

    watchdog = ShutdownWatchdog(stop, 60.0, on_expire=lambda code: fired.set(), clock=lambda: next(readings, 160.0))
    watchdog.start()
    stop.set()
    assert fired.wait(10)
    assert watchdog.elapsed() == 60.0


def test_the_watchdog_stays_quiet_when_the_clean_path_finishes() -> None:
    stop, fired = threading.Event(), threading.Event()
    watchdog = ShutdownWatchdog(stop, 0.3, on_expire=lambda code: fired.set())
    watchdog.start()
    stop.set()
    watchdog.disarm()
    watchdog.join(2)
    assert not watchdog.is_alive() and not fired.is_set()


# ---- the server under load and abuse ------------------------------------------------------------


class GatedCheck(HealthCheck):
    """A health check that answers only once the test opens the gate (or raises, if told to)."""

    def __init__(self, fail: bool = False) -> None:
        self.gate = threading.Event()
        self.fail = fail

    def report(self) -> HealthReport:
        self.gate.wait(10)
        if self.fail:
            raise RuntimeError("the check broke")
        return HealthReport(True, {"status": "ok"})


class Captured(logging.Handler):
    """Collects the records of the health server's logger; :meth:`wait_for` waits for one."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._changed:
            self.records.append(record)
            self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = 10) -> logging.LogRecord | None:
        def found() -> logging.LogRecord | None:
            return next((r for r in self.records if text in r.getMessage()), None)

        with self._changed:
            self._changed.wait_for(found, timeout)
            return found()


@pytest.fixture
def server_log() -> Iterator[Captured]:
    logger = logging.getLogger("ingestor.service.httpd")
    handler, level = Captured(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_a_burst_of_connections_is_queued_not_dropped() -> None:
    server = HealthServer("127.0.0.1", 0, FixedCheck(HealthReport(True, {})))  # listening, not yet accepting
    clients: list[socket.socket] = []
    try:
        for _ in range(64):  # with the stdlib's backlog of 5, the 7th connect waits for SYN retries
            clients.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        server.start()
        for client in clients:
            client.sendall(b"GET /livez HTTP/1.0\r\n\r\n")
        assert all(client.recv(64).startswith(b"HTTP/1.0 200") for client in clients)
    finally:
        for client in clients:
            client.close()
        server.stop()


def test_an_idle_connection_is_closed_by_the_server() -> None:
    server = HealthServer("127.0.0.1", 0, FixedCheck(HealthReport(True, {})), timeout=0.2).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as idle:
            idle.sendall(b"GET /health HTTP/1.1\r\n")  # a request that never finishes
            assert idle.recv(1024) == b""  # the server hung up; before, this waited forever
    finally:
        server.stop()


def test_a_client_that_hangs_up_early_is_a_log_line_not_a_traceback(
    server_log: Captured, capfd: pytest.CaptureFixture[str]
) -> None:
    check = GatedCheck()
    server = HealthServer("127.0.0.1", 0, check).start()
    try:
        client = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        client.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # a reset, before the answer
        check.gate.set()
        logged = server_log.wait_for("ended early")
    finally:
        server.stop()
    assert logged is not None and logged.levelno == logging.DEBUG
    assert "Traceback" not in capfd.readouterr().err


def test_a_failing_check_answers_500_and_logs_through_our_logger(
    server_log: Captured, capfd: pytest.CaptureFixture[str]
) -> None:
    check = GatedCheck(fail=True)
    check.gate.set()
    server = HealthServer("127.0.0.1", 0, check).start()
    try:
        response = httpx.get(server.url + "/health")
    finally:
        server.stop()
    assert response.status_code == 500 and response.json() == {"error": "internal error (see the service log)"}
    assert any(record.exc_info or record.exc_text for record in server_log.records)  # (redacted into exc_text)
    assert "Traceback" not in capfd.readouterr().err


def test_a_locked_audit_table_is_a_slow_database_not_an_unreachable_one(migrated_db_url: str) -> None:
    with psycopg.connect(migrated_db_url) as locker:
        locker.execute("LOCK TABLE ss_ingestion_log IN ACCESS EXCLUSIVE MODE")
        status = DatabaseProbe(migrated_db_url, ttl=0, timeout=1).status()
    assert status.reachable and status.error is not None and "slow" in status.error
    assert "unreachable" not in status.error
    report = evaluate(Snapshot(ago(5), last_cycle=cycle("success")), status, POLICY, NOW)
    assert report.http_status == 200 and report.body["reasons"] == []
    assert report.body["database_reachable"] is True and "ss_ingestion_log" in report.body["database_error"]


def test_requests_during_a_probe_answer_from_the_cache(migrated_db_url: str) -> None:
    probe = DatabaseProbe(migrated_db_url, ttl=0)
    first = probe.status()
    with probe._lock:  # another request is refreshing the status right now
        assert probe.status() is first
