"""The whole pipeline against the simulator over real HTTP and a real PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from ingestor.pipeline import NullReporter
from ingestor.simulator import ApiKey, Faults, Malformations

from fixtures.harness import Harness
from fixtures.sim import SIM_TODAY, RunningSimulator

MakeSim = Callable[..., RunningSimulator]


@pytest.mark.pg_matrix
def test_backfill_loads_every_row_then_a_second_run_downloads_and_inserts_nothing(
    make_simulator: MakeSim, harness: Callable[..., Harness]
) -> None:
    sim = make_simulator(days=3, rows=25)
    h = harness(sim)
    result = h.backfill(2)
    reports = sim.reports()
    expected_rows = sum(r.row_count for r in reports)
    assert result.status == "success" and result.exit_code == 0
    assert result.totals.files_loaded == len(reports) == result.totals.reports_found
    assert result.totals.rows_read == expected_rows == result.totals.rows_inserted
    assert h.query("SELECT count(*) FROM ss_events") == [(expected_rows,)]
    per_file = dict(h.query("SELECT file_name, rows_inserted FROM ss_report_files WHERE status = 'loaded'"))
    assert per_file == {r.file: r.row_count for r in reports}
    log_row = h.query(
        "SELECT status, reports_found, events_ingested, events_skipped, files_loaded FROM ss_ingestion_log"
    )
    assert log_row == [("success", len(reports), expected_rows, 0, len(reports))]

    downloads = sim.counters.downloads_started()
    again = h.once()
    assert again.status == "success"
    assert sim.counters.downloads_started() == downloads
    assert (again.totals.files_new, again.totals.rows_inserted) == (0, 0)
    assert h.query("SELECT count(*) FROM ss_events") == [(expected_rows,)]


@pytest.mark.pg_matrix
def test_report_date_is_the_files_own_date_and_lookback_catches_late_files(
    make_simulator: MakeSim, harness: Callable[..., Harness]
) -> None:
    sim = make_simulator(days=3, rows=5, types=("scan_ssl",))
    h = harness(sim, SS_LOOKBACK_DAYS="2")
    h.once()
    dates = sorted(d for (d,) in h.query("SELECT DISTINCT report_date FROM ss_events"))
    assert dates == [SIM_TODAY - timedelta(days=2), SIM_TODAY - timedelta(days=1), SIM_TODAY]
    late = sim.sim.publish("scan_ssl", SIM_TODAY - timedelta(days=2), variant="asn-delayed")
    result = h.once()
    assert result.totals.files_new == 1 and result.totals.rows_inserted == late.row_count


def test_api_refusing_the_key_ends_the_run_as_error(make_simulator: MakeSim, harness: Callable[..., Harness]) -> None:
    sim = make_simulator(faults=Faults(force_status=401))
    h = harness(sim)
    result = h.once()
    assert result.status == "error" and result.exit_code == 1
    ((status, error),) = h.query("SELECT status, error_message FROM ss_ingestion_log")
    assert status == "error" and "credentials" in error


def test_api_unavailable_is_retried_then_recorded(make_simulator: MakeSim, harness: Callable[..., Harness]) -> None:
    sim = make_simulator(rows=3, faults=Faults(api_errors_next=1))
    h = harness(sim)
    assert h.once().status == "success"
    sim.faults.update(force_status=503)
    result = h.once()
    assert result.status == "error" and "503" in (result.error or "")


def test_failed_downloads_fail_their_file_only_and_are_retried_later(
    make_simulator: MakeSim, harness: Callable[..., Harness]
) -> None:
    sim = make_simulator(days=1, rows=10, types=("scan_ssl", "device_id", "blocklist"))
    sim.faults.update(truncate_types=["scan_ssl"], empty_types=["device_id"])
    h = harness(sim)
    result = h.once()
    assert result.status == "partial" and result.exit_code == 4
    statuses = dict(h.query("SELECT report_type, status FROM ss_report_files"))
    assert statuses == {"scan_ssl": "failed", "device_id": "failed", "blocklist": "loaded"}
    errors = dict(h.query("SELECT report_type, error FROM ss_report_files WHERE status = 'failed'"))
    assert "truncated" in errors["scan_ssl"] and "empty" in errors["device_id"]
    assert h.query("SELECT count(*) FROM ss_events WHERE report_type <> 'blocklist'") == [(0,)]

    sim.faults.clear()
    retry = h.once()
    assert retry.status == "success" and retry.totals.files_new == 2
    assert h.query("SELECT count(*) FROM ss_events") == [(30,)]
    assert h.query("SELECT max(attempts) FROM ss_report_files") == [(2,)]


def test_every_file_failing_is_an_error_and_expired_ids_say_so(
    make_simulator: MakeSim, harness: Callable[..., Harness]
) -> None:
    sim = make_simulator(days=1, rows=3, types=("scan_ssl",))
    (report,) = sim.reports()
    sim.faults.update(gone_ids=[report.id])
    h = harness(sim)
    result = h.once()
    assert result.status == "error"
    (error,) = h.query("SELECT error FROM ss_report_files")[0]
    assert "404" in error


def test_malformed_rows_are_counted_and_the_rest_is_kept(
    make_simulator: MakeSim, harness: Callable[..., Harness]
) -> None:
    sim = make_simulator(days=1, rows=200, types=("scan_http", "event4_sinkhole"), malformed=Malformations(rate=0.1))
    h = harness(sim)
    result = h.once()
    assert result.status == "success"
    for report in sim.reports():
        ((read, inserted, duplicate, rejected, anomalies),) = h.query(
            "SELECT rows_read, rows_inserted, rows_duplicate, rows_rejected, anomalies FROM ss_report_files"
            " WHERE file_name = %s",
            report.file,
        )
        assert read == report.row_count == inserted + duplicate + rejected
        injected = report.injected
        assert sum(injected.values()) > 0
        assert anomalies.get("invalid_ip", 0) == injected.get("invalid_ip", 0)
        assert anomalies.get("extra_cells", 0) == injected.get("extra_cells", 0)
        assert anomalies.get("missing_cells", 0) == injected.get("missing_cells", 0)
        assert anomalies.get("nul_removed", 0) == injected.get("nul_byte", 0)
        assert anomalies.get("invalid_utf8", 0) == injected.get("non_utf8", 0)
        assert rejected == 0 and inserted == report.row_count


def test_unknown_report_types_are_loaded_and_flagged(make_simulator: MakeSim, harness: Callable[..., Harness]) -> None:
    sim = make_simulator(days=1, rows=7, types=("scan_ssl",), unknown_types=("scan_futureproto",))
    h = harness(sim)
    assert h.once().status == "success"
    assert h.query("SELECT report_type, known_type, rows_inserted FROM ss_report_files ORDER BY 1") == [
        ("scan_futureproto", False, 7),
        ("scan_ssl", True, 7),
    ]
    assert h.query("SELECT count(*) FROM ss_events WHERE report_type = 'scan_futureproto' AND ip IS NOT NULL") == [(7,)]


def test_a_stop_request_abandons_the_current_file_cleanly(
    make_simulator: MakeSim, harness: Callable[..., Harness]
) -> None:
    sim = make_simulator(days=1, rows=3000, types=("scan_ssl", "device_id"))
    h = harness(sim, INGEST_BATCH_ROWS="100")
    progress_calls = 0

    class StopAfterFirstBatch:
        def files_planned(self, count: int) -> None: ...
        def file_started(self, item_label: str, size_hint: int | None) -> None: ...
        def file_finished(self, outcome: Any) -> None: ...

        def rows_loaded(self, rows: int) -> None:
            nonlocal progress_calls
            progress_calls += 1
            h.stop.set()

    h.ingestor.reporter = StopAfterFirstBatch()
    result = h.once()
    assert result.status == "interrupted" and progress_calls == 1
    assert h.query("SELECT count(*) FROM ss_events") == [(0,)]
    assert h.query("SELECT status FROM ss_report_files") == [("interrupted",)]
    assert h.query("SELECT status FROM ss_ingestion_log") == [("interrupted",)]

    h.stop.clear()
    h.ingestor.reporter = NullReporter()
    again = h.once()
    assert again.status == "success" and again.totals.files_loaded == 2
    assert h.query("SELECT count(*) FROM ss_events") == [(6000,)]


def test_download_ids_never_reach_the_database_or_the_logs(
    make_simulator: MakeSim, harness: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    sim = make_simulator(days=1, rows=3, types=("scan_ssl", "device_id"))
    sim.faults.update(truncate_types=["scan_ssl"])
    h = harness(sim)
    with caplog.at_level(logging.DEBUG, logger="ingestor"):
        h.once()
    ids = [r.id for r in sim.reports()]
    stored = " ".join(
        str(v)
        for row in h.query("SELECT * FROM ss_report_files") + h.query("SELECT * FROM ss_ingestion_log")
        for v in row
    )
    text = stored + caplog.text
    assert "truncated" in text
    for report_id in ids:
        assert report_id not in text
    assert sim.download_url not in text


def test_subject_columns_land_in_the_right_place_for_every_family(
    make_simulator: MakeSim, harness: Callable[..., Harness]
) -> None:
    types = (
        "scan_ssl",
        "event4_sinkhole",
        "event4_honeypot_ddos_target",
        "event4_sinkhole_http_referer",
        "blocklist",
        "compromised_account",
        "ransomware_victim",
    )
    sim = make_simulator(days=1, rows=5, types=types)
    h = harness(sim)
    assert h.once().status == "success"
    for report in sim.reports():
        subject = h.ingestor.catalog.types[report.type].subject
        rows = h.query(
            "SELECT host(ip), port, asn, geo, hostname, raw_data FROM ss_events WHERE report_type = %s", report.type
        )
        assert len(rows) == report.row_count
        for ip, port, asn, geo, hostname, raw in rows:
            assert ip == (raw[subject.ip] if subject.ip else None)
            assert port == (int(raw[subject.port]) if subject.port and raw[subject.port] else None)
            assert asn == (int(raw[subject.asn]) or None if subject.asn and raw[subject.asn] else None)
            assert geo == (raw[subject.geo] or None if subject.geo else None)
            assert hostname == (raw[subject.hostname].lower() or None if subject.hostname else None)


def test_a_one_day_listing_at_the_limit_is_split_by_type_and_subscription_until_complete(
    make_simulator: MakeSim, harness: Callable[..., Harness]
) -> None:
    """reports/list has a limit and no pages: a listing of `limit` entries may have been cut."""
    key = ApiKey(subscriptions=("org-a", "org-b"))
    sim = make_simulator(keys=(key,), days=1, types=("scan_ssl", "scan_http", "scan_rdp"), variants=("geo",), rows=3)
    assert len(sim.reports()) == 6  # 3 types x 2 subscriptions
    h = harness(sim, SS_LIST_LIMIT="2")
    result = h.backfill(0)  # one day: the old fallback (day by day) never ran for it
    assert result.status == "success", result.error
    assert result.totals.files_loaded == 6 == result.totals.reports_found
    assert h.query("SELECT count(*) FROM ss_events") == [(18,)]


def test_a_listing_that_stays_at_the_limit_says_files_may_be_missing(
    make_simulator: MakeSim, harness: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    sim = make_simulator(days=1, types=("scan_ssl",), variants=("geo", "asn", "geo-delayed"), rows=3)
    h = harness(sim, SS_LIST_LIMIT="2")
    with caplog.at_level(logging.WARNING):
        result = h.backfill(0)
    assert result.status == "partial" and result.exit_code == 4
    assert "2026-11-20 scan_ssl returned SS_LIST_LIMIT=2 files" in (result.error or "")
    assert "some files may be missing" in caplog.text
    audit = h.query("SELECT status, error_message FROM ss_ingestion_log")
    assert audit[0][0] == "partial" and "raise SS_LIST_LIMIT" in audit[0][1]
