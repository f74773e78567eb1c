"""What a person sees on a terminal: log lines above the progress bar (one Console for both), one line per
file from several worker threads, details with -v, ISO 8601 UTC times, and tables that fit the width."""

from __future__ import annotations

import io
import logging
import re
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from ingestor import terminal
from ingestor.cli.output import LiveReporter, command_prefix, file_line, suggest
from ingestor.load import LoadStats
from ingestor.logs import TextFormatter, configure_logging, log_context
from ingestor.ops.formats import write_rows
from ingestor.sources import FileOutcome

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ"


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal (what rich and our checks look at)."""

    def isatty(self) -> bool:
        return True


def screen_lines(text: str) -> list[str]:
    """The text as lines, control sequences removed and carriage returns taken as line starts."""
    return [part for line in ANSI.sub("", text).split("\n") for part in line.split("\r")]


@pytest.fixture
def stderr_tty(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTerminal]:
    """sys.stderr as a 100-column terminal (set by the test body: pytest's capture resets sys.stderr after
    the fixtures ran), and the logging configuration restored after."""
    fake = FakeTerminal()
    monkeypatch.setenv("COLUMNS", "100")
    terminal.reset_console()
    terminal.reset_verbosity()
    saved = {name: (list(logging.getLogger(name).handlers), logging.getLogger(name).level) for name in ("ingestor",)}
    try:
        yield fake
    finally:
        terminal.reset_console()
        terminal.reset_verbosity()
        terminal.show_file_lines(False)
        for name, (handlers, level) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.setLevel(level)


def outcome(n: int, status: str = "loaded") -> FileOutcome:
    stats = LoadStats(rows_read=10, inserted=7, duplicates=3) if status == "loaded" else None
    return FileOutcome(f"2026-11-20-scan_ssl-file{n:03d}.csv", "scan_ssl", date(2026, 11, 20), status, stats, 100, None)


def on_terminal(monkeypatch: pytest.MonkeyPatch, fake: FakeTerminal) -> None:
    monkeypatch.setattr("sys.stderr", fake)
    terminal.reset_console()


def test_log_lines_print_above_the_progress_bar_never_into_it(
    stderr_tty: FakeTerminal, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_terminal(monkeypatch, stderr_tty)
    configure_logging("INFO", "auto", terminal_level="WARNING")
    log = logging.getLogger("ingestor.test")
    with LiveReporter() as reporter:
        reporter.files_planned(3)
        reporter.file_started("2026-11-20-scan_ssl-a.csv", None)
        reporter.rows_loaded(5)
        reporter.progress.refresh()  # the bar is on the screen now
        log.warning("the API answered slowly")
        reporter.file_finished(outcome(1))
        log.warning("a second warning")
    lines = screen_lines(stderr_tty.getvalue())
    warnings = [line for line in lines if "WARNING" in line]
    assert len(warnings) == 2
    assert all(re.fullmatch(rf"{STAMP} WARNING +(the API answered slowly|a second warning)", line) for line in warnings)
    assert any(line.startswith("loaded") and "file001.csv" in line for line in lines)


def test_one_line_per_file_from_many_worker_threads(stderr_tty: FakeTerminal, monkeypatch: pytest.MonkeyPatch) -> None:
    on_terminal(monkeypatch, stderr_tty)
    files_per_worker, workers = 25, 4
    with LiveReporter() as reporter:
        reporter.files_planned(files_per_worker * workers)
        barrier = threading.Barrier(workers)

        def work(worker: int) -> None:
            barrier.wait()
            for n in range(files_per_worker):
                number = worker * files_per_worker + n
                reporter.file_started(outcome(number).label, None)
                reporter.rows_loaded(4)
                reporter.rows_loaded(6)
                reporter.file_finished(outcome(number))

        threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        task = reporter.progress.tasks[0]
        assert (task.completed, task.fields["rows"]) == (100, 1000)
    file_lines = [line for line in screen_lines(stderr_tty.getvalue()) if line.startswith("loaded ")]
    assert sorted(re.search(r"file(\d{3})", line).group(1) for line in file_lines) == [  # type: ignore[union-attr]
        f"{n:03d}" for n in range(100)
    ]
    assert reporter.files_shown == 100


def test_a_files_details_are_shown_with_v_only(stderr_tty: FakeTerminal, monkeypatch: pytest.MonkeyPatch) -> None:
    on_terminal(monkeypatch, stderr_tty)
    log = logging.getLogger("ingestor.files")
    for verbosity, shown in ((0, False), (1, True)):
        stderr_tty.seek(0)
        stderr_tty.truncate()
        terminal.reset_verbosity()
        terminal.set_verbosity(verbosity)
        configure_logging("INFO", "auto", terminal_level=("WARNING", "INFO")[verbosity])
        with LiveReporter(), log_context(report_type="scan_ssl", report_date="2026-11-20"):
            log.info("cleaned values: invalid_ip 2")
            log.warning("rejected rows: csv_error 1")
        text = stderr_tty.getvalue()
        assert ("cleaned values" in text) is shown and ("rejected rows" in text) is shown
    with log_context(report_type="scan_ssl", report_date="2026-11-20"):  # no live display: nothing hides them
        terminal.reset_verbosity()
        configure_logging("INFO", "auto", terminal_level="WARNING")
        log.warning("a warning about a file, no display running")
    assert "no display running" in stderr_tty.getvalue()


def test_times_are_iso_8601_utc() -> None:
    record = logging.LogRecord("ingestor.x", logging.INFO, __file__, 1, "hello", None, None)
    record.created = datetime(2026, 11, 18, 10, 26, 40, 500_000, tzinfo=UTC).timestamp()  # whatever the zone
    record.context = ""
    assert TextFormatter().format(record) == "2026-11-18 10:26:40Z [INFO] ingestor.x: hello"
    assert terminal.iso_time(None) == "-"


def test_a_file_line_says_what_became_of_the_file() -> None:
    loaded = outcome(1)
    loaded.stats = LoadStats(
        rows_read=10,
        inserted=6,
        duplicates=2,
        rejected=2,
        anomalies=Counter({"invalid_ip": 1}),
        rejects=Counter({"csv_error": 2}),
    )
    assert file_line(loaded) == (
        "2026-11-20-scan_ssl-file001.csv: loaded: 10 rows: 6 inserted, 2 duplicate, 2 rejected;"
        " rejected: csv_error 2; cleaned: invalid_ip 1"
    )
    failed = outcome(2, "failed")
    failed.error = "download: HTTP 404"
    assert file_line(failed) == "2026-11-20-scan_ssl-file002.csv: failed: download: HTTP 404"


ROWS = [
    {
        "id": n,
        "report_type": "scan_ssl",
        "report_date": date(2026, 11, 20),
        "ip": f"192.0.2.{n}",
        "port": 443,
        "asn": 64500,
        "geo": "DE",
        "hostname": f"host-{n}.a-rather-long-domain-name.example.org",
        "tag": "ssl-freak;ssl-poodle",
        "severity": "medium",
    }
    for n in range(3)
]
COLUMNS = tuple(ROWS[0])


def test_a_table_on_a_narrow_terminal_keeps_the_columns_that_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    out, left_out = FakeTerminal(), list[str]()
    priority = ("report_date", "ip", "hostname", "severity", "port", "report_type", "asn", "geo", "tag", "id")
    write_rows(ROWS, COLUMNS, "table", out, priority=priority, left_out=left_out)
    lines = screen_lines(out.getvalue())
    assert max(len(line) for line in lines) <= 80
    header = next(line for line in lines if "report_date" in line).split()
    assert header == [column for column in COLUMNS if column in header]  # the table's order, not the priority's
    assert left_out and set(left_out) == set(COLUMNS) - set(header)
    assert left_out[-1] == "id" and "hostname" in header  # the least useful go first
    assert all("a-rather-long-domain-name.example.org" in line for line in lines if "host-" in line)  # unfolded

    wide, none_left = FakeTerminal(), list[str]()
    write_rows(ROWS, COLUMNS, "table", wide, left_out=none_left)  # --wide: no priority, every column
    assert none_left == [] and "tag" in wide.getvalue()


def test_suggested_commands_start_the_way_the_program_was_called(monkeypatch: pytest.MonkeyPatch) -> None:
    script = str(Path(sys.executable).parent / "shadowserver-ingestor")
    monkeypatch.setattr("sys.argv", [script])
    monkeypatch.delenv("SSI_INVOKED_AS", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert command_prefix() == script  # not on PATH: its full path
    assert suggest("run `shadowserver-ingestor migrate` first") == f"run `{script} migrate` first"
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    assert command_prefix() == "shadowserver-ingestor"  # on PATH (an activated virtualenv, pip install)
    monkeypatch.setenv("SSI_INVOKED_AS", "../checkout/run")  # what ./run was called as
    assert suggest("run `shadowserver-ingestor migrate` first") == "run `../checkout/run migrate` first"
