"""``import`` on hostile paths: only regular files are read, links inside directories are not followed,
nothing blocks, and sizes and compression ratios are bounded. Each problem is one line; the rest loads."""

from __future__ import annotations

import gzip
import os
import zipfile
from pathlib import Path

from fixtures.cli import invoke, query

GOOD = b'"timestamp","ip","port"\n"2026-11-18 01:00:00Z","192.0.2.1",443\n"2026-11-18 02:00:00Z","192.0.2.2",443\n'
SECRET = b"root:$6$saltsalt$hashhashhash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_links_inside_a_directory_are_not_followed_and_special_files_never_block(
    migrated_db_url: str, tmp_path: Path
) -> None:
    secret = tmp_path / "shadow"
    secret.write_bytes(SECRET)
    inbox = tmp_path / "inbox"
    (inbox / "nested").mkdir(parents=True)
    (inbox / "2026-11-18-scan_ssl-org-geo.csv").write_bytes(GOOD)
    (inbox / "2026-11-18-scan_ssl-x.csv").symlink_to(secret)
    (inbox / "nested" / "2026-11-18-scan_ssl-y.csv").symlink_to("/etc/passwd")
    (inbox / "linked-dir").symlink_to(tmp_path)
    (inbox / "2026-11-18-scan_ssl-loop-a.csv").symlink_to(inbox / "2026-11-18-scan_ssl-loop-b.csv")
    (inbox / "2026-11-18-scan_ssl-loop-b.csv").symlink_to(inbox / "2026-11-18-scan_ssl-loop-a.csv")
    os.mkfifo(inbox / "2026-11-18-scan_ssl-pipe.csv")  # opened for reading, it would wait for a writer

    result = invoke(migrated_db_url, "import", str(inbox))

    assert result.exit_code == 4 and "Traceback" not in result.stderr
    problems = errors(result.stderr)
    assert len(problems) == 6
    assert sum("symbolic link inside a directory: not followed" in line for line in problems) == 5
    assert any("pipe.csv" in line and "a FIFO, not a regular file" in line for line in problems)
    assert query(migrated_db_url, "SELECT count(*) FROM ss_events") == [(2,)]
    assert query(migrated_db_url, "SELECT count(*) FROM ss_events WHERE raw_data::text LIKE %s", "%root:%") == [(0,)]


def test_a_link_named_on_the_command_line_is_followed_to_a_regular_file_only(
    migrated_db_url: str, tmp_path: Path
) -> None:
    target = tmp_path / "download.bin"
    target.write_bytes(GOOD)
    link = tmp_path / "2026-11-18-scan_ssl-org-geo.csv"
    link.symlink_to(target)
    to_device = tmp_path / "2026-11-18-scan_http-org-geo.csv"
    to_device.symlink_to("/dev/zero")  # read, it would never end
    loop = tmp_path / "2026-11-18-device_id-org-geo.csv"
    loop.symlink_to(loop)
    fifo = tmp_path / "2026-11-18-blocklist-org-ip.csv"
    os.mkfifo(fifo)

    result = invoke(migrated_db_url, "import", str(link), str(to_device), str(loop), str(fifo))

    assert result.exit_code == 4 and "Traceback" not in result.stderr
    problems = errors(result.stderr)
    assert len(problems) == 3
    assert any("scan_http" in line and "a symbolic link to a character device" in line for line in problems)
    assert any("device_id" in line and "symbolic link loop" in line for line in problems)
    assert any("blocklist" in line and "a FIFO, not a regular file" in line for line in problems)
    assert query(migrated_db_url, "SELECT report_type, rows_inserted FROM ss_report_files") == [("scan_ssl", 2)]


def test_archives_over_the_size_or_ratio_bounds_are_refused_before_they_are_read(
    migrated_db_url: str, tmp_path: Path
) -> None:
    with zipfile.ZipFile(tmp_path / "mail.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("2026-11-18-scan_ssl-org-geo.csv", GOOD)
        archive.writestr("2026-11-18-scan_http-org-geo.csv", GOOD + b"0" * (64 << 20))  # a 64 MiB zip bomb
    (tmp_path / "2026-11-18-device_id-org-geo.csv.gz").write_bytes(gzip.compress(GOOD + b"\0" * (64 << 20)))
    long_row = b'"2026-11-18 03:00:00Z","' + b"9" * 4096 + b'",1\n'
    (tmp_path / "2026-11-18-blocklist-org-ip.csv").write_bytes(GOOD + long_row)

    result = invoke(migrated_db_url, "import", str(tmp_path), env={"SS_MAX_FILE_SIZE": "4KiB"})

    assert result.exit_code == 4 and "Traceback" not in result.stderr
    problems = errors(result.stderr)
    assert len(problems) == 3
    assert any("scan_http" in line and "SS_MAX_FILE_SIZE (4.0 KiB)" in line for line in problems)
    assert any("device_id" in line and "SS_MAX_FILE_SIZE" in line for line in problems)
    assert any("blocklist" in line and "SS_MAX_FILE_SIZE" in line for line in problems)

    bombs = [str(tmp_path / "mail.zip"), str(tmp_path / "2026-11-18-device_id-org-geo.csv.gz")]
    ratio = invoke(migrated_db_url, "import", *bombs)
    problems = errors(ratio.stderr)
    assert len(problems) == 2 and all("SS_MAX_COMPRESSION_RATIO" in line for line in problems)
    assert query(migrated_db_url, "SELECT report_type, rows_inserted FROM ss_report_files") == [("scan_ssl", 2)]


def test_an_imported_file_without_its_final_newline_loads_and_is_counted(migrated_db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "2026-11-18-scan_ssl-org-geo.csv"
    path.write_bytes(GOOD.rstrip(b"\n"))
    result = invoke(migrated_db_url, "import", str(path))
    assert result.exit_code == 0, result.stderr
    assert query(migrated_db_url, "SELECT rows_inserted, anomalies->>'no_final_newline' FROM ss_report_files") == [
        (2, "1")
    ]


def test_an_html_page_saved_as_a_report_is_not_imported(migrated_db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "2026-11-18-scan_ssl-org-geo.csv"
    path.write_bytes(b"<!DOCTYPE html>\n<html><body>Session expired, please log in</body></html>\n")
    result = invoke(migrated_db_url, "import", str(path))
    assert result.exit_code == 1 and "an HTML or XML page, not a CSV report" in result.stderr
    assert query(migrated_db_url, "SELECT status FROM ss_report_files") == [("failed",)]
    assert query(migrated_db_url, "SELECT count(*) FROM ss_events") == [(0,)]
