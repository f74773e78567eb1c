"""``import``: local report files (plain, gzip, zip, directories) load every row once, through the same
ledger and audit as API files; a re-import inserts nothing; bad paths are one line each."""

from __future__ import annotations

import gzip
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from ingestor.catalog import load_catalog
from ingestor.db.connect import Database
from ingestor.db.lock import IngestionLock
from ingestor.simulator import Report

from fixtures.cli import invoke, query
from fixtures.sim import RunningSimulator

MakeSim = Callable[..., RunningSimulator]


def mail_folder(sim: RunningSimulator, folder: Path) -> list[Report]:
    """The simulator's files as an e-mail archive: plain CSVs, gzip files and a zip of several CSVs."""
    reports = sorted(sim.reports(), key=lambda r: r.file)
    (folder / "inbox" / "old").mkdir(parents=True)
    with zipfile.ZipFile(folder / "inbox" / "attachments.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for number, report in enumerate(reports):
            source = sim.sim.path_of(report)
            if number % 3 == 0:
                shutil.copyfile(source, folder / "inbox" / report.file)
            elif number % 3 == 1:
                (folder / "inbox" / "old" / f"{report.file}.gz").write_bytes(gzip.compress(source.read_bytes()))
            else:
                archive.write(source, f"reports/{report.file}")
    return reports


def test_a_directory_of_plain_gzip_and_zip_files_loads_every_row_once(
    make_simulator: MakeSim, migrated_db_url: str, tmp_path: Path
) -> None:
    sim = make_simulator(days=2, rows=15)
    reports = mail_folder(sim, tmp_path)
    expected = sum(report.row_count for report in reports)
    assert len(reports) >= 9

    result = invoke(migrated_db_url, "import", str(tmp_path / "inbox"))

    assert result.exit_code == 0, result.stdout + result.stderr
    assert query(migrated_db_url, "SELECT count(*) FROM ss_events") == [(expected,)]
    ledger = query(migrated_db_url, "SELECT file_name, source, status, rows_inserted, source_key FROM ss_report_files")
    assert {row[0]: row[3] for row in ledger} == {report.file: report.row_count for report in reports}
    assert {(row[1], row[2]) for row in ledger} == {("import", "loaded")}
    assert all(row[4].startswith("file:") for row in ledger)
    by_slice = query(migrated_db_url, "SELECT report_type, report_date, count(*) FROM ss_events GROUP BY 1, 2")
    assert {(t, d): n for t, d, n in by_slice} == {(r.type, r.date): r.row_count for r in reports}
    ((kind, status, found, inserted, loaded),) = query(
        migrated_db_url, "SELECT kind, status, reports_found, events_ingested, files_loaded FROM ss_ingestion_log"
    )
    assert (kind, status, found, inserted, loaded) == ("import", "success", len(reports), expected, len(reports))

    again = invoke(migrated_db_url, "import", str(tmp_path / "inbox"))

    assert again.exit_code == 0
    assert f"{len(reports)} file(s) already imported, skipped" in again.stderr
    assert query(migrated_db_url, "SELECT count(*) FROM ss_events") == [(expected,)]
    assert query(migrated_db_url, "SELECT count(*), sum(attempts) FROM ss_report_files") == [
        (len(reports), len(reports))
    ]
    last = query(migrated_db_url, "SELECT files_new, events_ingested FROM ss_ingestion_log ORDER BY id DESC LIMIT 1")
    assert last == [(0, 0)]


def test_force_loads_again_and_inserts_nothing_new(
    make_simulator: MakeSim, migrated_db_url: str, tmp_path: Path
) -> None:
    sim = make_simulator(days=1, rows=10, types=("scan_ssl",))
    (report,) = sim.reports()
    path = tmp_path / report.file
    shutil.copyfile(sim.sim.path_of(report), path)
    assert invoke(migrated_db_url, "import", str(path)).exit_code == 0

    forced = invoke(migrated_db_url, "import", "--force", str(path))

    assert forced.exit_code == 0 and "already imported" not in forced.stderr
    assert query(migrated_db_url, "SELECT count(*) FROM ss_events") == [(report.row_count,)]
    assert query(migrated_db_url, "SELECT attempts, status FROM ss_report_files") == [(2, "loaded")]
    last = query(
        migrated_db_url,
        "SELECT files_loaded, events_ingested, rows_duplicate FROM ss_ingestion_log ORDER BY id DESC LIMIT 1",
    )
    assert last == [(1, 0, report.row_count)]


def test_type_and_date_flags_name_a_file_whose_name_does_not(
    make_simulator: MakeSim, migrated_db_url: str, tmp_path: Path
) -> None:
    sim = make_simulator(days=1, rows=6, types=("blocklist",))
    (report,) = sim.reports()
    path = tmp_path / "export from mail.csv"
    shutil.copyfile(sim.sim.path_of(report), path)

    result = invoke(migrated_db_url, "import", "--type", "blocklist", "--date", "2026-10-01", str(path))

    assert result.exit_code == 0, result.stderr
    assert query(migrated_db_url, "SELECT DISTINCT report_type, report_date::text FROM ss_events") == [
        ("blocklist", "2026-10-01")
    ]


def test_bad_files_are_one_line_each_and_the_others_load(
    make_simulator: MakeSim, migrated_db_url: str, tmp_path: Path
) -> None:
    sim = make_simulator(days=1, rows=5, types=("scan_ssl",))
    (report,) = sim.reports()
    good = tmp_path / report.file
    shutil.copyfile(sim.sim.path_of(report), good)
    broken = tmp_path / "2026-11-18-scan_http-org-geo.csv.gz"
    broken.write_bytes(gzip.compress(good.read_bytes())[:30])

    result = invoke(migrated_db_url, "import", str(good), str(broken))

    assert result.exit_code == 4
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert "scan_http-org-geo.csv.gz" in errors[0] and "cannot read" in errors[0]
    assert query(migrated_db_url, "SELECT count(*) FROM ss_events") == [(report.row_count,)]

    only_bad = invoke(migrated_db_url, "import", str(broken))
    assert only_bad.exit_code == 1 and only_bad.stderr.count("error:") == 1


def test_a_path_that_cannot_be_imported_is_one_line_and_exit_2_before_anything_starts(
    make_simulator: MakeSim, fresh_db_url: str, tmp_path: Path
) -> None:
    sim = make_simulator(days=1, rows=5, types=("scan_ssl",))
    (report,) = sim.reports()
    good = tmp_path / report.file
    shutil.copyfile(sim.sim.path_of(report), good)
    nameless = tmp_path / "export.csv"
    shutil.copyfile(good, nameless)

    missing = invoke(fresh_db_url, "import", str(good), str(tmp_path / "missing.zip"))
    assert (missing.exit_code, missing.stderr) == (2, f"error: {tmp_path / 'missing.zip'}: no such file or directory\n")
    unnamed = invoke(fresh_db_url, "import", str(good), str(nameless))
    assert unnamed.exit_code == 2 and unnamed.stderr.count("\n") == 1
    assert "export.csv" in unnamed.stderr and "give --type and --date" in unnamed.stderr
    # nothing started: the empty database was not even migrated
    assert query(fresh_db_url, "SELECT count(*) FROM pg_class WHERE relname LIKE 'ss%%'") == [(0,)]


def test_a_directory_skips_files_not_named_like_reports(
    make_simulator: MakeSim, migrated_db_url: str, tmp_path: Path
) -> None:
    sim = make_simulator(days=1, rows=5, types=("scan_ssl",))
    (report,) = sim.reports()
    folder = tmp_path / "mail"
    folder.mkdir()
    shutil.copyfile(sim.sim.path_of(report), folder / report.file)
    (folder / "notes.csv").write_text("not,a,report\n")

    result = invoke(migrated_db_url, "import", str(folder))

    assert result.exit_code == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if "notes.csv" in line] == [
        f"skipped {folder / 'notes.csv'}: the name is not YYYY-MM-DD-<type>-<id>.csv; give --type and --date"
    ]
    assert query(migrated_db_url, "SELECT count(*) FROM ss_events") == [(report.row_count,)]
    (folder / report.file).unlink()
    only_notes = invoke(migrated_db_url, "import", str(folder))
    assert only_notes.exit_code == 2 and "nothing to import" in only_notes.stderr


def test_an_unreadable_file_is_one_line_and_exit_2(migrated_db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "2026-11-18-scan_ssl-org-geo.csv"
    if os.geteuid() == 0:  # root may read any mode: name a file nobody may read, a write-only sysfs file
        path.symlink_to(sorted(Path("/sys/bus").glob("*/uevent"))[0])
    else:
        path.write_text("timestamp,ip,port\n2026-11-18 01:00:00Z,192.0.2.1,443\n")
        path.chmod(0)
    result = invoke(migrated_db_url, "import", str(path))
    assert (result.exit_code, result.stderr) == (
        2,
        f"error: {path}: permission denied: this user cannot read the file\n",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--type", "Scan SSL"], "not a report type name"),
        (["--date", "2026-02-30"], "not a date"),
        ([], "Missing argument"),
    ],
)
def test_bad_flags_exit_2_with_one_line(migrated_db_url: str, tmp_path: Path, args: list[str], message: str) -> None:
    path = tmp_path / "2026-11-18-scan_ssl-org-geo.csv"
    path.write_text("timestamp,ip,port\n2026-11-18 01:00:00Z,192.0.2.1,443\n")
    result = invoke(migrated_db_url, "import", *args, *([str(path)] if args else []))
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert query(migrated_db_url, "SELECT count(*) FROM ss_events") == [(0,)]


def test_import_with_a_type_the_catalog_does_not_know_loads_it_flagged(migrated_db_url: str, tmp_path: Path) -> None:
    """Older archives carry types such as phish_url; named by --type or by the file name, they load alike."""
    path = tmp_path / "export.csv"
    path.write_text('"timestamp","ip","url"\n"2020-05-01 01:00:00","192.0.2.1","http://x.example/"\n')
    result = invoke(migrated_db_url, "import", "--type", "phish_url", "--date", "2020-05-01", str(path))
    assert result.exit_code == 0, result.stderr
    stored = query(migrated_db_url, "SELECT report_type, host(ip) FROM ss_events")
    assert stored == [("phish_url", "192.0.2.1")]
    assert query(migrated_db_url, "SELECT report_type, known_type FROM ss_report_files") == [("phish_url", False)]


def test_import_waits_for_no_one_when_another_ingestor_holds_the_lock(migrated_db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "2026-11-18-scan_ssl-org-geo.csv"
    path.write_text("timestamp,ip,port\n2026-11-18 01:00:00Z,192.0.2.1,443\n")
    with Database(migrated_db_url) as db, IngestionLock(db):
        result = invoke(migrated_db_url, "import", str(path))
    assert result.exit_code == 3 and "another ingestor instance" in result.stderr
    assert query(migrated_db_url, "SELECT count(*) FROM ss_events") == [(0,)]


def test_an_archive_of_retired_report_types_lands_with_every_subject_field(
    migrated_db_url: str, tmp_path: Path
) -> None:
    legacy = load_catalog().legacy.types["microsoft_sinkhole"]
    header = ",".join(f'"{column}"' for column in legacy.fields)
    values = {
        "timestamp": "2020-05-01 03:04:05",
        "ip": "198.51.100.7",
        "src_port": "51234",
        "asn": "64501",
        "geo": "DE",
    }
    values["hostname"] = "Infected.Example"
    row = ",".join(f'"{values.get(column, "")}"' for column in legacy.fields)
    path = tmp_path / "2020-05-01-microsoft_sinkhole-org-geo.csv"
    path.write_text(f"{header}\n{row}\n")
    result = invoke(migrated_db_url, "import", str(path))
    assert result.exit_code == 0, result.stderr
    stored = query(migrated_db_url, "SELECT report_type, host(ip), port, asn, geo, hostname, severity FROM ss_events")
    assert stored == [("event4_microsoft_sinkhole", "198.51.100.7", 51234, 64501, "DE", "infected.example", "critical")]
    ledger = query(migrated_db_url, "SELECT report_type, file_name, known_type, columns_unknown FROM ss_report_files")
    assert ledger == [("event4_microsoft_sinkhole", path.name, True, None)]
