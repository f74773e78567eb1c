"""``catalog refresh`` writes the data directory's catalog (never the installed package's), shows its diff
first and asks or needs --yes; ``load_catalog()`` uses that file when present, and notices when it changes."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingestor.catalog import data_catalog_path, load_catalog
from ingestor.catalog.refresh import build_catalog, diff_catalogs, shipped_catalog_path, write_catalog

from fixtures.cli import invoke

SCHEMA = Path(__file__).resolve().parents[1] / "data" / "schema" / "reports.json"
"""Shadowserver's published schema, pinned in the repository (see its SOURCE.md)."""


def published() -> dict[str, Any]:
    return json.loads(SCHEMA.read_text())  # type: ignore[no-any-return]


def changed_schema(tmp_path: Path) -> Path:
    """The published schema with one new type, one removed, and one column added and one removed in scan_ssl."""
    reports = published()
    reports["scan_brandnew"] = {"name": "Brand-New", "fields": ["timestamp", "ip", "port", "asn", "geo", "severity"]}
    del reports["scan_qotd"]
    fields = reports["scan_ssl"]["fields"]
    reports["scan_ssl"]["fields"] = [f for f in fields if f != "cipher_suite"] + ["ssl_new_flag"]
    path = tmp_path / "reports.json"
    path.write_text(json.dumps(reports))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refresh(*args: str) -> Any:
    return invoke("", "catalog", "refresh", *args)


def test_the_default_target_is_catalog_json_in_ss_data_dir(tmp_path: Path) -> None:
    assert data_catalog_path() == tmp_path / "data" / "catalog.json"  # SS_DATA_DIR: set by clean_environment
    assert load_catalog().path is None, "no refreshed catalog yet: the shipped one is in use"


def test_a_published_schema_equal_to_the_shipped_catalog_writes_nothing() -> None:
    result = refresh("--from", str(SCHEMA), "--yes")
    assert result.exit_code == 0, result.output
    assert "compared with the shipped catalog (170 types" in result.stdout
    assert f"no changes: {data_catalog_path()} not written" in result.stdout
    assert not data_catalog_path().exists()


def test_the_diff_is_shown_before_anything_is_written_and_piped_input_needs_yes(tmp_path: Path) -> None:
    source = changed_schema(tmp_path)
    shipped = sha256(shipped_catalog_path())

    piped = refresh("--from", str(source))
    assert piped.exit_code == 2 and "run again with --yes" in piped.stderr
    for line in (
        "new report types (1):",
        "  + scan_brandnew (6 columns; subject ip, port, asn, geo)",
        "removed report types (1):",
        "  - scan_qotd",
        "changed report types (1):",
        "  ~ scan_ssl: new columns ssl_new_flag; removed columns cipher_suite",
    ):
        assert line in piped.stdout.splitlines(), piped.stdout
    assert not data_catalog_path().exists()

    dry = refresh("--from", str(source), "--dry-run")
    assert dry.exit_code == 0 and "dry run: nothing written" in dry.stdout and not data_catalog_path().exists()

    written = refresh("--from", str(source), "--yes")
    assert written.exit_code == 0, written.output
    assert f"written: {data_catalog_path()} (170 report types)" in written.stdout
    assert sha256(shipped_catalog_path()) == shipped, "the installed package is never written"

    catalog = load_catalog()
    assert catalog.path == data_catalog_path()
    assert "scan_brandnew" in catalog and "scan_qotd" not in catalog
    assert catalog.types["scan_brandnew"].subject.ip == "ip"
    assert "ssl_new_flag" in catalog.types["scan_ssl"].fields
    assert catalog.types["scan_ssl"].default_severity == "info", "severities survive a refresh"

    again = refresh("--from", str(source), "--yes")
    assert f"compared with {data_catalog_path()}" in again.stdout and "no changes" in again.stdout


def test_a_subject_change_and_reordered_columns_are_named() -> None:
    old = build_catalog(published())
    reports = published()
    fields = reports["event4_sinkhole"]["fields"]
    reports["event4_sinkhole"]["fields"] = ["timestamp", *[f for f in fields if f.startswith("dst_")], "src_ip"]
    lines = diff_catalogs(old, build_catalog(reports)).lines()
    change = next(line for line in lines if "event4_sinkhole:" in line)
    assert "subject src_ip, src_port, src_asn, src_geo, src_hostname -> dst_ip, dst_port" in change
    assert "columns reordered" in change and "removed columns" in change


def test_refresh_from_a_url(tmp_path: Path) -> None:
    source = changed_schema(tmp_path)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            base = f"http://127.0.0.1:{server.server_address[1]}"
            result = refresh("--from", f"{base}/{source.name}", "--yes")
            missing = refresh("--from", f"{base}/nothing.json", "--yes")
        finally:
            server.shutdown()
    assert result.exit_code == 0, result.output
    assert "scan_brandnew" in load_catalog()
    assert load_catalog().source["origin"].startswith(f"{base}/reports.json sha256:")
    assert missing.exit_code == 1 and "cannot fetch" in missing.stderr and "404" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "No such file"),
        ("[1, 2]", "not a Shadowserver reports.json"),
        ("{}", "not a Shadowserver"),
        ("{oops", "Expecting property name"),
    ],
)
def test_bad_sources_are_one_line_and_change_nothing(tmp_path: Path, content: str | None, message: str) -> None:
    source = tmp_path / "bad.json"
    if content is not None:
        source.write_text(content)
    result = refresh("--from", str(source), "--yes")
    assert result.exit_code == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not data_catalog_path().exists()


def test_an_unreachable_url_is_one_line() -> None:
    result = refresh("--from", "http://127.0.0.1:9/reports.json", "--yes")
    assert result.exit_code == 1 and "cannot fetch" in result.stderr and len(result.stderr.splitlines()) == 1


def test_an_unwritable_data_directory_is_one_line_naming_ss_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = invoke(
        "", "catalog", "refresh", "--from", str(changed_schema(tmp_path)), "--yes", env={"SS_DATA_DIR": str(blocker)}
    )
    assert result.exit_code == 1 and "cannot write" in result.stderr and "SS_DATA_DIR" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_to_writes_another_file_and_leaves_the_catalog_in_force(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    result = refresh("--from", str(changed_schema(tmp_path)), "--to", str(target), "--yes")
    assert result.exit_code == 0 and "scan_brandnew" in load_catalog(target)
    assert "used by every command" not in result.stdout and load_catalog().path is None


# ---- what load_catalog() uses ------------------------------------------------------------------------------


@pytest.fixture
def refreshed(tmp_path: Path) -> Iterator[Path]:
    """A refreshed catalog with one type more than the shipped one, in the data directory."""
    reports = published()
    reports["scan_brandnew"] = {"name": "Brand-New", "fields": ["timestamp", "ip", "port"]}
    write_catalog(build_catalog(reports, load_catalog()), data_catalog_path())
    yield data_catalog_path()


def test_a_changed_file_is_read_again_and_an_unchanged_one_is_not(refreshed: Path) -> None:
    first = load_catalog()
    assert first.path == refreshed and "scan_brandnew" in first
    assert load_catalog() is first, "unchanged: not parsed again"
    reports = published()
    reports["scan_other"] = {"name": "Other", "fields": ["timestamp", "ip"]}
    write_catalog(build_catalog(reports, load_catalog()), refreshed)
    second = load_catalog()
    assert second is not first and "scan_other" in second and "scan_brandnew" not in second
    refreshed.unlink()
    assert load_catalog().path is None


def test_a_shipped_catalog_newer_than_the_refreshed_one_wins(refreshed: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = json.loads(refreshed.read_text())
    data["source"]["generated_at"] = "2020-01-01T00:00:00+00:00"  # refreshed long before this package was built
    refreshed.write_text(json.dumps(data))
    os.utime(refreshed, ns=(1, 1))
    assert load_catalog().path is None
    assert "the shipped catalog" in caplog.text and "is newer than" in caplog.text


def test_an_unusable_refreshed_catalog_is_ignored_with_a_warning(
    refreshed: Path, caplog: pytest.LogCaptureFixture
) -> None:
    refreshed.write_text("{not json")
    assert load_catalog().path is None
    assert f"ignoring the catalog {refreshed}" in caplog.text
