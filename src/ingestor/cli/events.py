"""``events partition``: convert an ``ss_events`` that holds events into the partitioned table."""

from __future__ import annotations

import sys

import click

from ingestor.cli.output import is_terminal
from ingestor.cli.runtime import handle_errors, runtime
from ingestor.ops.partitioning import convert


@click.group()
def events() -> None:
    """The events table (ss_events)."""


@events.command()
@click.option("--wait", type=click.FloatRange(0, 86_400), default=0.0, help="Seconds to wait for the ingestion lock.")
@handle_errors
def partition(wait: float) -> None:
    """Partition ss_events by report date (EVENTS_PARTITION), keeping every row.

    A new database is partitioned from the start; this converts one that v1.0.0 or an earlier version
    loaded. It copies the events one report date at a time (resumable: run it again after an interruption),
    builds the indexes, checks the row count and swaps the tables. Ingestion waits meanwhile (a service
    stands by); readers keep reading the old table until the swap. It needs disk space for a second copy.
    """

    def progress(done: int, total: int, rows: int) -> None:
        if is_terminal() or done == total or done % 10 == 0:
            click.echo(f"  {done}/{total} report dates copied, {rows:,} rows", err=True)

    with runtime(need_db=True) as rt:
        result = convert(rt.require_db(), rt.settings, stop=rt.stop, progress=progress, wait_for_lock=wait)
    if result.already:
        click.echo("ss_events is partitioned already: nothing to do")
        return
    click.echo(
        f"ss_events is partitioned: {result.rows:,} rows of {result.dates} report dates in {result.partitions}"
        f" partitions ({result.dates_copied} dates copied now) in {result.seconds:.1f} s"
        f" (copy {result.copy_seconds:.1f} s, indexes {result.index_seconds:.1f} s)"
    )
    sys.stdout.flush()
