"""Planning an import: which files, which CSVs inside archives, their type, date and content key."""

from __future__ import annotations

import gzip
import hashlib
import io
import zipfile
from datetime import date
from pathlib import Path

import pytest

from ingestor.errors import ReportFileError
from ingestor.ops.imports import plan_import

CSV = b'"timestamp","ip","port"\n"2026-11-18 01:00:00Z","192.0.2.1","443"\n'
OTHER = b'"timestamp","ip","port"\n"2026-11-18 02:00:00Z","192.0.2.2","443"\n'


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_plain_gzip_and_zip_files_are_named_from_their_inner_names(tmp_path: Path) -> None:
    write(tmp_path / "2026-11-18-scan_ssl-org-geo.csv", CSV)
    write(tmp_path / "sub" / "2026-11-17-scan_http-org-asn.csv.gz", gzip.compress(OTHER))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("reports/2026-11-16-blocklist-org-ip.csv", CSV + b'"2026-11-16 00:00:00Z","192.0.2.9",""\n')
        archive.writestr("2026-11-16-device_id-org-geo.csv", OTHER + b'"x","192.0.2.3","22"\n')
        archive.writestr("README.txt", b"not a report")
        archive.writestr("__MACOSX/._2026-11-16-device_id-org-geo.csv", b"resource fork")
    write(tmp_path / "mail" / "attachment.zip", buffer.getvalue())
    write(tmp_path / "notes.txt", b"ignored when walking a directory")

    plan = plan_import([tmp_path])

    assert plan.problems == [] and plan.duplicates == []
    found = {(r.file_name, r.report_type, r.report_date, r.member is not None) for r in plan.reports}
    assert found == {
        ("2026-11-18-scan_ssl-org-geo.csv", "scan_ssl", date(2026, 11, 18), False),
        ("2026-11-17-scan_http-org-asn.csv", "scan_http", date(2026, 11, 17), False),
        ("2026-11-16-blocklist-org-ip.csv", "blocklist", date(2026, 11, 16), True),
        ("2026-11-16-device_id-org-geo.csv", "device_id", date(2026, 11, 16), True),
    }
    gz = next(r for r in plan.reports if r.report_type == "scan_http")
    assert gz.sha256 == hashlib.sha256(OTHER).hexdigest() and gz.size == len(OTHER)
    assert gz.source_key == "file:" + gz.sha256 and gz.source == "import"
    member = next(r for r in plan.reports if r.report_type == "blocklist")
    assert member.label == "attachment.zip:2026-11-16-blocklist-org-ip.csv"


def test_fetch_writes_the_decompressed_csv_and_checks_it_did_not_change(tmp_path: Path) -> None:
    path = write(tmp_path / "2026-11-17-scan_http-org-asn.csv.gz", gzip.compress(CSV))
    (report,) = plan_import([path]).reports
    spool = io.BytesIO()
    fetched = report.fetch(spool)
    assert spool.getvalue() == CSV and (fetched.size, fetched.sha256) == (len(CSV), report.sha256)
    path.write_bytes(gzip.compress(OTHER))
    with pytest.raises(ReportFileError, match="changed"):
        report.fetch(io.BytesIO())


def test_the_same_content_twice_is_imported_once(tmp_path: Path) -> None:
    write(tmp_path / "a" / "2026-11-18-scan_ssl-org-geo.csv", CSV)
    write(tmp_path / "b" / "2026-11-18-scan_ssl-org-geo.csv.gz", gzip.compress(CSV))
    plan = plan_import([tmp_path])
    assert len(plan.reports) == 1
    assert len(plan.duplicates) == 1 and "same content" in plan.duplicates[0]


def test_flags_name_files_whose_names_do_not_and_override_names_that_do(tmp_path: Path) -> None:
    odd = write(tmp_path / "export.csv", CSV)
    named = write(tmp_path / "2026-11-18-scan_ssl-org-geo.csv", OTHER)
    plan = plan_import([odd, named], report_type="scan_rdp", report_date=date(2026, 1, 2))
    assert plan.problems == []
    assert {(r.report_type, r.report_date) for r in plan.reports} == {("scan_rdp", date(2026, 1, 2))}
    only_date = plan_import([odd], report_date=date(2026, 1, 2))
    assert [p.message for p in only_date.problems] == ["the name is not YYYY-MM-DD-<type>-<id>.csv; give --type"]


def test_each_unusable_path_is_one_problem_and_the_others_go_on(tmp_path: Path) -> None:
    good = write(tmp_path / "2026-11-18-scan_ssl-org-geo.csv", CSV)
    paths = [
        write(tmp_path / "export.csv", CSV),
        write(tmp_path / "2026-11-18-scan_ssl-broken.csv.gz", gzip.compress(CSV)[:20]),
        write(tmp_path / "2026-11-18-scan_ssl-broken.zip", b"PK\x03\x04 this is not really a zip"),
        write(tmp_path / "2026-11-18-scan_ssl-empty-x.csv", b""),
        write(tmp_path / "2026-02-30-scan_ssl-org-geo.csv", CSV),
        write(tmp_path / "2026-11-18-Scan.SSL-org-geo.csv", CSV),
        tmp_path / "missing.csv",
        good,
    ]
    empty_dir = tmp_path / "nothing"
    empty_dir.mkdir()
    plan = plan_import([*paths, empty_dir])
    assert [r.path for r in plan.reports] == [good]
    messages = [str(problem) for problem in plan.problems]
    assert len(messages) == 8
    expected = [
        "give --type and --date",
        "cannot read",
        "cannot read",
        "the file is empty",
        "not a date",
        "not a report type name",
        "no such file or directory",
        "no .csv, .gz or .zip file",
    ]
    for message, fragment in zip(messages, expected, strict=True):
        assert fragment in message
        assert "\n" not in message
