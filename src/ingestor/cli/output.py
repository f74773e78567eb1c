"""What the ingesting commands print: a live display while files load (on a terminal), then the run.

On a terminal (stderr) a progress bar counts files and rows, and each file that finishes gets one line
above it; the log's details of each file are shown with ``-v``. Logs and the display share the process's
one Console (:mod:`ingestor.terminal`), so log lines print above the bar, never into it. On stdout the run
is a summary on a terminal; piped, plain lines (one per file, then the run) or, with ``--format json``,
one JSON object.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column
from rich.text import Text

from ingestor import terminal
from ingestor.ops.formats import json_value
from ingestor.pipeline import FileOutcome, RunResult

RESULT_FORMATS = ("text", "json")


INVOKED_AS = "SSI_INVOKED_AS"
"""Set by ``./run`` to the way it was called, so that the commands we suggest work as they are typed."""


def command_prefix() -> str:
    """How to call this program again from the same shell: what ``./run`` was called as; else
    ``shadowserver-ingestor`` when that is on PATH in this environment; else the script's own path, or
    this interpreter's ``-m ingestor`` when run as a module not on PATH."""
    if invoked := os.environ.get(INVOKED_AS):
        return invoked
    on_path = shutil.which("shadowserver-ingestor")
    if on_path and os.path.dirname(os.path.abspath(on_path)) == os.path.dirname(os.path.abspath(sys.executable)):
        return "shadowserver-ingestor"
    script = sys.argv[0] if sys.argv else ""
    if os.path.basename(script) == "shadowserver-ingestor" and os.path.isfile(script):
        return os.path.abspath(script)
    if script.endswith(("__main__.py", os.path.join("ingestor", "main.py"))):
        return f"{sys.executable} -m ingestor"
    return "shadowserver-ingestor"


def suggest(text: str) -> str:
    """``text`` with every `` `shadowserver-ingestor ...` `` command as it can be typed here."""
    prefix = command_prefix()
    return text if prefix == "shadowserver-ingestor" else text.replace("`shadowserver-ingestor ", f"`{prefix} ")


def is_terminal() -> bool:
    """Whether stdout is a terminal (what a command prints there is for a person)."""
    return terminal.stdout_is_terminal()


F = TypeVar("F", bound=Callable[..., Any])


def format_option() -> Callable[[F], F]:
    """``--format text|json`` (and ``--json``) of the commands that run ingestion."""

    def decorate(command: F) -> F:
        command = click.option("--json", "as_json", is_flag=True, help="Same as --format json.")(command)
        return click.option(
            "--format",
            "fmt",
            type=click.Choice(RESULT_FORMATS),
            help="How the run is printed on stdout [default: a summary on a terminal, text lines when piped].",
        )(command)

    return decorate


class LiveReporter:
    """Progress on a terminal: a bar (files done of planned, rows, time) and one line per finished file.

    Thread-safe: with ``INGEST_WORKERS`` > 1 the callbacks come from several worker threads at once.
    """

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or terminal.stderr_console()
        self.progress = Progress(
            TextColumn("{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis", max_width=60)),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rows]:>10,} rows"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self._task = self.progress.add_task("files", total=0, rows=0, visible=False)
        self._lock = threading.Lock()
        self._rows = 0
        self._loading: list[str] = []
        self.files_shown = 0

    def __enter__(self) -> LiveReporter:
        terminal.show_file_lines(True)
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
        terminal.show_file_lines(False)

    def files_planned(self, count: int) -> None:
        with self._lock:
            self.progress.update(self._task, total=count, visible=count > 0)

    def file_started(self, item_label: str, size_hint: int | None) -> None:
        with self._lock:
            self._loading.append(item_label)
            self._describe()

    def rows_loaded(self, rows: int) -> None:
        with self._lock:
            self._rows += rows
            self.progress.update(self._task, rows=self._rows)

    def file_finished(self, outcome: FileOutcome) -> None:
        with self._lock:
            if outcome.label in self._loading:
                self._loading.remove(outcome.label)
            self._describe()
            self.progress.advance(self._task)
            self.console.print(file_line(outcome, markup=True))
            self.files_shown += 1

    def _describe(self) -> None:
        if not self._loading:
            text = "files"
        elif len(self._loading) == 1:
            text = self._loading[0]
        else:
            text = f"{len(self._loading)} files: {self._loading[-1]}"
        self.progress.update(self._task, description=text)


def reporter_for_terminal() -> LiveReporter | None:
    """A live display when stderr is a terminal, else None (nothing is drawn into files and pipes)."""
    return LiveReporter() if terminal.stderr_is_terminal() else None


def _counts(outcome: FileOutcome) -> str:
    stats = outcome.stats
    if stats is None:
        return ""
    return (
        f"{stats.rows_read:,} rows: {stats.inserted:,} inserted, {stats.duplicates:,} duplicate, "
        f"{stats.rejected:,} rejected"
    )


def file_notes(outcome: FileOutcome) -> list[str]:
    """What is worth knowing about a loaded file besides its counts."""
    stats = outcome.stats
    if stats is None:
        return []
    notes: list[str] = []
    if not stats.known_type:
        notes.append("type not in the catalog")
    if stats.rejects:
        notes.append("rejected: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.rejects.items())))
    if stats.anomalies:
        notes.append("cleaned: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.anomalies.items())))
    return notes


_STATUS_STYLE = {"loaded": "green", "failed": "bold red", "interrupted": "yellow"}


def file_line(outcome: FileOutcome, *, markup: bool = False) -> Text | str:
    """One line for a file: ``loaded  <file>  200 rows: 200 inserted, 0 duplicate, 0 rejected; cleaned: ...``."""
    detail = outcome.error or "; ".join(filter(None, [_counts(outcome), *file_notes(outcome)]))
    if not markup:
        return f"{outcome.label}: {outcome.status}: {detail}" if detail else f"{outcome.label}: {outcome.status}"
    return Text.assemble(
        (f"{outcome.status:<11}", _STATUS_STYLE.get(outcome.status, "")), outcome.label, ("  " + detail, "dim")
    )


def run_summary(result: RunResult) -> str:
    totals = result.totals
    return (
        f"{result.status}: {totals.reports_found} files listed, {totals.files_new} new, {totals.files_loaded} loaded,"
        f" {totals.files_failed} failed; rows: {totals.rows_inserted:,} inserted, {totals.rows_duplicate:,} duplicate,"
        f" {totals.rows_rejected:,} rejected"
    )


def result_dict(result: RunResult) -> dict[str, Any]:
    """The run as JSON can hold it (``--format json``)."""
    totals = result.totals
    return {
        "run_id": result.run_id,
        "kind": result.kind,
        "status": result.status,
        "exit_code": result.exit_code,
        "window": list(result.window) if result.window else None,
        "files_listed": totals.reports_found,
        "files_new": totals.files_new,
        "files_loaded": totals.files_loaded,
        "files_failed": totals.files_failed,
        "files_abandoned": result.files_abandoned,
        "rows_read": totals.rows_read,
        "rows_inserted": totals.rows_inserted,
        "rows_duplicate": totals.rows_duplicate,
        "rows_rejected": totals.rows_rejected,
        "bytes": totals.bytes_downloaded,
        "error": result.error,
        "files": [
            {
                "file": outcome.label,
                "report_type": outcome.report_type,
                "report_date": outcome.report_date,
                "status": outcome.status,
                "rows_read": outcome.stats.rows_read if outcome.stats else None,
                "inserted": outcome.stats.inserted if outcome.stats else None,
                "duplicate": outcome.stats.duplicates if outcome.stats else None,
                "rejected": outcome.stats.rejected if outcome.stats else None,
                "known_type": outcome.stats.known_type if outcome.stats else None,
                "anomalies": dict(outcome.stats.anomalies) if outcome.stats else {},
                "rejects": dict(outcome.stats.rejects) if outcome.stats else {},
                "bytes": outcome.size_bytes,
                "error": outcome.error,
            }
            for outcome in result.files
        ],
    }


def chosen_format(fmt: str | None, as_json: bool) -> str | None:
    return "json" if as_json else fmt


def print_result(result: RunResult, fmt: str | None = None, *, files_shown: bool = False) -> None:
    """The run on stdout: JSON, plain lines, or (on a terminal) its summary.

    ``files_shown``: a live display already printed one line per file (on the terminal's stderr).
    """
    if fmt == "json":
        print_json(result_dict(result))
        return
    if fmt == "text" or not is_terminal():
        for outcome in result.files:
            click.echo(file_line(outcome))
        click.echo(f"run {result.run_id} {run_summary(result)}")
        if result.files_abandoned:
            click.echo(f"{result.files_abandoned} file(s) failed too often and are no longer retried")
        if result.error:
            click.echo(f"errors: {result.error}")
        return
    console = Console(highlight=False)
    if not files_shown:
        for outcome in result.files:
            console.print(file_line(outcome, markup=True))
    console.print(Text(run_summary(result), style=_RUN_STYLE.get(result.status, "bold red")))
    if result.files_abandoned:
        console.print(f"[yellow]{result.files_abandoned} file(s) failed too often and are no longer retried[/]")


_RUN_STYLE = {"success": "bold green", "partial": "bold yellow", "interrupted": "bold yellow"}


def print_json(data: Any) -> None:
    click.echo(json.dumps(json_value(data), indent=2, default=str))
