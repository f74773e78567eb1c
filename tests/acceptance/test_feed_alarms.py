"""The service watches the feed itself: a report type that stopped arriving, and cycles that list nothing,
make /health say degraded (200) with warnings, show in /metrics and in ``status``."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingestor.simulator.history import standard_history

from fixtures.cli import invoke
from fixtures.service import Service, wait_for
from fixtures.sim import RunningSimulator

pytestmark = pytest.mark.slow


def warnings_of(service: Service, text: str) -> list[str]:
    response = service.health()
    body = response.json()
    return [w for w in body.get("warnings", []) if text in w] if response.status_code == 200 else []


def test_a_type_that_stopped_arriving_is_flagged_by_health_metrics_and_status(
    make_simulator: Callable[..., RunningSimulator],
    migrated_db_url: str,
    start_service: Callable[..., Service],
    tmp_path: Path,
) -> None:
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    history = standard_history(yesterday - timedelta(days=13), days=14)
    history.write(tmp_path / "feed")
    sim = make_simulator(today=None, reports_dir=tmp_path / "feed")
    service = start_service(sim, migrated_db_url, BACKFILL_DAYS="20", SS_DELTA_TYPES="scan_ssl")
    [warning] = wait_for(lambda: warnings_of(service, "scan_telnet arrived on"), "the missing-type alarm", service)
    body = service.health().json()
    assert body["status"] == "degraded" and body["reasons"] == []
    assert f"and not on {yesterday}" in warning
    exposition = service.request("/metrics").text
    assert 'shadowserver_ingestor_feed_alarm{kind="missing_type",report_type="scan_telnet"} 1.0' in exposition
    assert 'shadowserver_ingestor_open_findings{report_type="scan_rdp",severity="high"}' in exposition
    status = json.loads(invoke(migrated_db_url, "status", "--json", env={"SS_DELTA_TYPES": "scan_ssl"}).stdout)
    assert [a["report_type"] for a in status["feed"]["alarms"]] == ["scan_telnet"]
    assert "feed: scan_telnet arrived on" in service.log()


def test_cycles_that_list_nothing_are_flagged(
    make_simulator: Callable[..., RunningSimulator],
    migrated_db_url: str,
    start_service: Callable[..., Service],
    tmp_path: Path,
) -> None:
    (tmp_path / "nothing").mkdir()
    sim = make_simulator(today=None, reports_dir=tmp_path / "nothing")
    service = start_service(sim, migrated_db_url, ALARM_EMPTY_CYCLES="2")
    [warning] = wait_for(lambda: warnings_of(service, "listed no file at all"), "the empty-cycles alarm", service)
    assert warning.startswith("the last 2 cycles succeeded and listed no file at all")
    assert service.health().json()["status"] == "degraded"
    text = invoke(migrated_db_url, "status", env={"ALARM_EMPTY_CYCLES": "2"}).stdout
    assert "feed alarm (empty_cycles): the last 2 cycles succeeded" in text
