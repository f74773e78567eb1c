"""One-shot commands: ``ping``, ``once``, ``backfill DAYS``, ``migrate``."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from datetime import date, datetime, timedelta

import click

from ingestor import audit
from ingestor.cli import params
from ingestor.cli.output import chosen_format, format_option, print_json, print_result, reporter_for_terminal
from ingestor.cli.runtime import Runtime, handle_errors, runtime
from ingestor.db.lock import IngestionLock
from ingestor.pipeline import Ingestor, RunResult
from ingestor.terminal import iso_time


def ingest_window(
    rt: Runtime,
    kind: str,
    window: tuple[date, date] | None = None,
    *,
    days: int | None = None,
    until: date | None = None,
    wait_for_lock: float = 0.0,
    fmt: str | None = None,
) -> RunResult:
    """Take the ingestion lock, close what a dead process left open, run one window, print the result."""
    db = rt.require_db()
    with ExitStack() as stack:
        lock = IngestionLock(db)
        lock.acquire(wait=wait_for_lock, stop=rt.stop)
        stack.callback(lock.release)
        with db.connection() as conn:
            audit.recover_stale(conn)
        reporter = reporter_for_terminal()
        if reporter is not None:
            stack.enter_context(reporter)
        ingestor = Ingestor(rt.settings, db, rt.require_client(), stop=rt.stop, reporter=reporter)
        if window is None:
            window = ingestor.backfill_window(days, until) if days is not None else ingestor.cycle_window()
        result = ingestor.run(kind, window)
    print_result(result, fmt, files_shown=reporter is not None and reporter.files_shown > 0)
    return result


@click.command()
@handle_errors
def ping() -> None:
    """Call test/ping with your key and print the API's answer."""
    with runtime(need_api=True) as rt:
        answer = rt.require_client().ping()
    print_json(answer)


@click.command()
@format_option()
@handle_errors
def once(fmt: str | None, as_json: bool) -> None:
    """Run one ingestion cycle over the lookback window (SS_LOOKBACK_DAYS) and exit.

    Exit codes: 0 success, 4 some files failed, 1 nothing could be done (API or database), 2 bad
    configuration, 3 another instance holds the ingestion lock, 130 interrupted.
    """
    with runtime(need_api=True, need_db=True) as rt:
        result = ingest_window(rt, "once", fmt=chosen_format(fmt, as_json))
    sys.exit(result.exit_code)


@click.command()
@click.argument("days", type=params.days(0, params.MAX_BACKFILL_DAYS))
@click.option(
    "--until",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Last day of the window (YYYY-MM-DD, UTC); default today.",
)
@format_option()
@handle_errors
def backfill(days: int, until: datetime | None, fmt: str | None, as_json: bool) -> None:
    """Load DAYS days before today (or --until) up to it, UTC; 0 loads that day only.

    Files already loaded are skipped, so a backfill can be repeated or widened safely.
    """
    if until is not None and until.date() - date.min < timedelta(days=days):
        raise click.BadParameter(f"{days} days before {until.date()} is before the year 1", param_hint="'DAYS'")
    with runtime(need_api=True, need_db=True) as rt:
        result = ingest_window(
            rt, "backfill", days=days, until=until.date() if until else None, fmt=chosen_format(fmt, as_json)
        )
    sys.exit(result.exit_code)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON: every migration, when applied, and whether now.")
@handle_errors
def migrate(as_json: bool) -> None:
    """Create or upgrade the database schema, and grant the viewer role (VIEWER_ROLE) read access."""
    with runtime(need_db=True) as rt, rt.require_db().connection() as conn:
        versions = conn.execute("SELECT version, name, applied_at FROM ss_schema_migrations ORDER BY version")
        rows = [(f"{version:04d}_{name}", applied_at) for version, name, applied_at in versions]
    now = {migration.label for migration in rt.migrated}
    if as_json:
        print_json([{"migration": label, "applied_at": at, "applied_now": label in now} for label, at in rows])
        return
    for label, applied_at in rows:
        click.echo(f"{label}  applied {iso_time(applied_at)}{'  (now)' if label in now else ''}")
    click.echo(f"schema at {rows[-1][0]}: " + (f"{len(now)} migration(s) applied now" if now else "up to date"))
