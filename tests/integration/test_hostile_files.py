"""Hostile and broken report files through the whole pipeline: the simulator misbehaving over real HTTP, a
real PostgreSQL. Nothing is lost (a file that cannot be loaded fails and is loaded whole later), nothing is
loaded that is not a report, and nothing grows without bound."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ingestor.api.client import DownloadLimits, ReportItem, ShadowserverClient
from ingestor.errors import DownloadTooSlowError
from ingestor.parse.rowhash import event_hash

from fixtures.harness import Harness
from fixtures.sim import SIM_TODAY, RunningSimulator

MakeSim = Callable[..., RunningSimulator]


def ledger(h: Harness) -> list[tuple[Any, ...]]:
    return h.query("SELECT status, rows_read, rows_inserted, error, anomalies, rejects FROM ss_report_files")


def hashes_of(data: bytes) -> set[str]:
    """The v1.0.0 event hashes of a clean file: what must land."""
    rows = csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""))
    return {event_hash(row) for row in rows}


def stored_hashes(h: Harness) -> set[str]:
    return {value for (value,) in h.query("SELECT event_hash FROM ss_events")}


def one_report_sim(make_simulator: MakeSim, rows: int = 40, **options: Any) -> RunningSimulator:
    return make_simulator(days=1, rows=rows, types=("scan_ssl",), **options)


# ---- rows lost ----------------------------------------------------------------------------------


def test_a_stray_quote_loses_no_row_but_its_own_shape(
    make_simulator: MakeSim, harness: Callable[..., Harness], tmp_path: Path
) -> None:
    # Fields left bare, as some files have them: nothing closes a stray quote, it swallowed the rest.
    clean = b"timestamp,ip,port,asn,hostname\n" + b"".join(
        b"2026-11-20 00:%02d:%02dZ,192.0.2.%d,%d,64496,host%d.example\n" % (n // 60 % 60, n % 60, n % 250, n, n)
        for n in range(2000)
    )
    lines = clean.split(b"\n")
    lines[10] = lines[10].replace(b",192.0.2.", b',"192.0.2.')  # row 10: a quote opens its ip field
    (tmp_path / f"{SIM_TODAY}-scan_ssl-org-geo.csv").write_bytes(b"\n".join(lines))
    h = harness(make_simulator(reports_dir=tmp_path))

    result = h.once()

    assert result.status == "success"
    ((status, read, inserted, error, anomalies, rejects),) = ledger(h)
    assert (status, read, inserted, error) == ("loaded", 2000, 2000, None)
    assert anomalies["runaway_quote"] == 1 and rejects == {}
    good = hashes_of(b"\n".join(clean.split(b"\n")[:10] + clean.split(b"\n")[11:]))
    assert len(good) == 1999 and good <= stored_hashes(h)  # every other row, with v1.0.0's identity


def test_a_header_name_with_a_byte_that_is_not_utf8_loads_the_file(
    make_simulator: MakeSim, harness: Callable[..., Harness], tmp_path: Path
) -> None:
    sim = one_report_sim(make_simulator, rows=20)
    (report,) = sim.reports()
    header, rest = sim.sim.content(report).split(b"\n", 1)
    (tmp_path / report.file).write_bytes(header.replace(b'"tag"', b'"t\xe4g"') + b"\n" + rest)
    h = harness(make_simulator(reports_dir=tmp_path))

    assert h.once().status == "success"

    ((status, read, inserted, error, anomalies, _),) = ledger(h)
    assert (status, read, inserted, error) == ("loaded", 20, 20, None)
    assert anomalies["invalid_utf8_header"] == 1
    assert h.query("SELECT count(*) FROM ss_events WHERE raw_data ? 'täg'") == [(20,)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("html", "an HTML or XML page, not a CSV report"),
        ("json", "a JSON document, not a CSV report"),
        ("foreign_csv", "shares no column"),
    ],
)
def test_a_body_that_is_not_a_report_fails_and_is_loaded_later(
    make_simulator: MakeSim, harness: Callable[..., Harness], body: str, message: str
) -> None:
    sim = one_report_sim(make_simulator)
    sim.faults.update(bogus_body=body)
    h = harness(sim)

    result = h.once()

    assert result.status == "error"
    ((status, read, inserted, error, _, _),) = ledger(h)
    assert (status, read, inserted) == ("failed", 0, 0) and message in error
    assert h.query("SELECT count(*) FROM ss_events") == [(0,)]

    sim.faults.clear()
    assert h.once().status == "success"
    assert h.query("SELECT status, rows_inserted FROM ss_report_files") == [("loaded", 40)]


def test_an_unknown_report_type_still_loads_whatever_its_columns(
    make_simulator: MakeSim, harness: Callable[..., Harness], tmp_path: Path
) -> None:
    (tmp_path / f"{SIM_TODAY}-scan_brandnew-org-geo.csv").write_bytes(
        b'"when","addr","banner"\n"2026-11-20 00:00:00Z","192.0.2.1","x"\n'
    )
    h = harness(make_simulator(reports_dir=tmp_path))
    assert h.once().status == "success"
    assert h.query("SELECT status, rows_inserted, known_type FROM ss_report_files") == [("loaded", 1, False)]


@pytest.mark.parametrize("label", ["labelled", "unlabelled"])
def test_gzip_bodies_are_decompressed_with_or_without_content_encoding(
    make_simulator: MakeSim, harness: Callable[..., Harness], label: str
) -> None:
    sim = one_report_sim(make_simulator, rows=300)
    (report,) = sim.reports()
    sim.faults.update(gzip_body=label)
    h = harness(sim)

    assert h.once().status == "success"

    assert h.query("SELECT status, rows_inserted, size_bytes FROM ss_report_files") == [
        ("loaded", 300, len(sim.sim.content(report)))
    ]
    assert stored_hashes(h) == hashes_of(sim.sim.content(report))


def test_a_content_length_shorter_than_the_body_is_a_truncation(
    make_simulator: MakeSim, harness: Callable[..., Harness]
) -> None:
    sim = one_report_sim(make_simulator, rows=500)
    sim.faults.update(short_content_length=0.5)
    h = harness(sim)

    assert h.once().status == "error"
    ((status, read, inserted, error, _, _),) = ledger(h)
    assert (status, read, inserted) == ("failed", 0, 0) and "truncated" in error and "line break" in error

    sim.faults.clear()
    assert h.once().status == "success"
    assert h.query("SELECT count(*) FROM ss_events") == [(500,)]


def test_a_download_without_its_final_newline_is_retried_later(
    make_simulator: MakeSim, harness: Callable[..., Harness]
) -> None:
    sim = one_report_sim(make_simulator)
    sim.faults.update(no_final_newline=True, gzip_body="labelled")
    h = harness(sim)
    assert h.once().status == "error"
    assert h.query("SELECT status, rows_read FROM ss_report_files") == [("failed", 0)]
    sim.faults.clear()
    assert h.once().status == "success"


# ---- unbounded ----------------------------------------------------------------------------------


def test_an_endless_download_stops_at_the_maximum_file_size(
    make_simulator: MakeSim, harness: Callable[..., Harness], tmp_path: Path
) -> None:
    sim = one_report_sim(make_simulator)
    sim.faults.update(endless_body=True)
    h = harness(sim, SS_MAX_FILE_SIZE="2MiB", SS_WORK_DIR=str(tmp_path))

    assert h.once().status == "error"

    ((status, error),) = h.query("SELECT status, error FROM ss_report_files")
    assert status == "failed" and "larger than SS_MAX_FILE_SIZE (2.0 MiB)" in error
    assert sim.counters.downloads_started() == 1  # not retried at once: it would only grow again
    assert list(tmp_path.iterdir()) == []  # the spool file went with the attempt


def test_a_gzip_bomb_download_stops_at_the_compression_ratio(
    make_simulator: MakeSim, harness: Callable[..., Harness]
) -> None:
    sim = one_report_sim(make_simulator)
    sim.faults.update(endless_body=True, gzip_body="unlabelled")  # one row repeated: compresses > 100:1
    h = harness(sim)
    assert h.once().status == "error"
    ((error,),) = h.query("SELECT error FROM ss_report_files")
    assert "SS_MAX_COMPRESSION_RATIO" in error


def test_a_trickling_download_is_abandoned_at_its_deadline(
    make_simulator: MakeSim, harness: Callable[..., Harness]
) -> None:
    sim = one_report_sim(make_simulator)
    sim.faults.update(trickle_seconds=0.05)
    h = harness(sim, SS_DOWNLOAD_DEADLINE="1")

    result = h.once()

    assert result.status == "error"
    ((status, error),) = h.query("SELECT status, error FROM ss_report_files")
    assert status == "failed" and "SS_DOWNLOAD_DEADLINE (1 s)" in error
    sim.faults.clear()
    assert h.once().status == "success"


def test_too_little_free_disk_fails_the_file_before_it_is_downloaded(
    make_simulator: MakeSim, harness: Callable[..., Harness]
) -> None:
    sim = one_report_sim(make_simulator)
    h = harness(sim, SS_MIN_FREE_DISK="1000000TiB")
    assert h.once().status == "error"
    ((status, error),) = h.query("SELECT status, error FROM ss_report_files")
    assert status == "failed" and "SS_MIN_FREE_DISK" in error
    assert sim.counters.downloads_started() == 0


def test_a_line_longer_than_the_row_limit_is_skipped_and_counted(
    make_simulator: MakeSim, harness: Callable[..., Harness], tmp_path: Path
) -> None:
    sim = one_report_sim(make_simulator, rows=30)
    (report,) = sim.reports()
    lines = sim.sim.content(report).split(b"\n")
    lines.insert(5, b'"2026-11-20 00:00:00Z","' + b"A" * (17 << 20) + b'"')  # 17 MiB, over the 16 MiB limit
    (tmp_path / report.file).write_bytes(b"\n".join(lines))
    h = harness(make_simulator(reports_dir=tmp_path))

    assert h.once().status == "success"

    ((status, read, inserted, error, _, rejects),) = ledger(h)
    assert (status, read, inserted, error, rejects) == ("loaded", 31, 30, None, {"line_too_long": 1})
    ((line, reason),) = h.query("SELECT line, reason FROM ss_rejected_rows")
    assert (line, reason) == (6, "line_too_long")


def test_a_download_slower_than_the_minimum_speed_is_abandoned(make_simulator: MakeSim) -> None:
    sim = one_report_sim(make_simulator)
    (report,) = sim.reports()
    sim.faults.update(trickle_seconds=0.02)  # about 50 bytes/s
    limits = DownloadLimits(min_speed=1000, speed_window=0.5)
    item = ReportItem(report.id, report.type, report.date, report.file, report.subscription)
    client = ShadowserverClient(sim.api_url, sim.api_key, sim.api_secret, sim.download_url, limits=limits)
    with client, pytest.raises(DownloadTooSlowError, match="under SS_DOWNLOAD_MIN_SPEED"):
        client.download(item, io.BytesIO())
    assert sim.counters.downloads_started() == 1  # abandoned, not retried at once
