"""Human output: a progress display while files load (on a terminal only) and a summary of the run."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ingestor.pipeline import FileOutcome, RunResult


def is_terminal() -> bool:
    return sys.stdout.isatty()


class RichReporter:
    """Progress bars for files and rows, shown on a terminal."""

    def __init__(self, console: Console | None = None) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rows]:>10,} rows"),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            transient=True,
        )
        self._files = self.progress.add_task("files", total=0, rows=0, visible=False)
        self._rows = 0

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def files_planned(self, count: int) -> None:
        self.progress.update(self._files, total=count, visible=count > 0)

    def file_started(self, item_label: str, size_hint: int | None) -> None:
        self.progress.update(self._files, description=item_label)

    def rows_loaded(self, rows: int) -> None:
        self._rows += rows
        self.progress.update(self._files, rows=self._rows)

    def file_finished(self, outcome: FileOutcome) -> None:
        self.progress.advance(self._files)


def _human(number: int) -> str:
    return f"{number:,}"


def print_result(result: RunResult, console: Console | None = None) -> None:
    """A table of the run's files and its totals; plain lines when not on a terminal."""
    totals = result.totals
    if not is_terminal():
        for outcome in result.files:
            click.echo(_plain_file_line(outcome))
        click.echo(
            f"run {result.run_id} {result.status}: {totals.reports_found} listed, {totals.files_new} new, "
            f"{totals.files_loaded} loaded, {totals.files_failed} failed; rows {totals.rows_inserted} inserted, "
            f"{totals.rows_duplicate} duplicate, {totals.rows_rejected} rejected"
        )
        if result.error:
            click.echo(f"errors: {result.error}")
        return
    console = console or Console()
    if result.files:
        table = Table(title=f"run {result.run_id} ({result.kind})", title_justify="left")
        for column in ("file", "status", "rows", "inserted", "duplicate", "rejected", "note"):
            table.add_column(
                column, justify="right" if column in ("rows", "inserted", "duplicate", "rejected") else "left"
            )
        for outcome in result.files:
            stats = outcome.stats
            table.add_row(
                outcome.label,
                _status_markup(outcome.status),
                _human(stats.rows_read) if stats else "-",
                _human(stats.inserted) if stats else "-",
                _human(stats.duplicates) if stats else "-",
                _human(stats.rejected) if stats else "-",
                outcome.error or _note(outcome),
            )
        console.print(table)
    console.print(
        f"[bold]{_status_markup(result.status)}[/]: {totals.reports_found} files listed, {totals.files_new} new, "
        f"{totals.files_loaded} loaded, {totals.files_failed} failed; rows: {_human(totals.rows_inserted)} inserted, "
        f"{_human(totals.rows_duplicate)} duplicate, {_human(totals.rows_rejected)} rejected"
    )
    if result.files_abandoned:
        console.print(f"[yellow]{result.files_abandoned} file(s) failed too often and are no longer retried[/]")


def _note(outcome: FileOutcome) -> str:
    stats = outcome.stats
    if stats is None:
        return ""
    notes: list[str] = []
    if not stats.known_type:
        notes.append("unknown type")
    if stats.anomalies:
        notes.append(", ".join(f"{k} {v}" for k, v in sorted(stats.anomalies.items())))
    return "; ".join(notes)


def _status_markup(status: str) -> str:
    colour = {"success": "green", "loaded": "green", "partial": "yellow", "interrupted": "yellow"}.get(status, "red")
    return f"[{colour}]{status}[/]"


def _plain_file_line(outcome: FileOutcome) -> str:
    stats = outcome.stats
    if stats is None:
        return f"{outcome.label}: {outcome.status}: {outcome.error}"
    return (
        f"{outcome.label}: {outcome.status}: {stats.rows_read} rows, {stats.inserted} inserted, "
        f"{stats.duplicates} duplicate, {stats.rejected} rejected"
    )


def print_json(data: Any) -> None:
    import json

    click.echo(json.dumps(data, indent=2, default=str))
