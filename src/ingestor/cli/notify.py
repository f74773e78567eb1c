"""``notify``: send each due organisation its digest (docs/notifications.md)."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import click

from ingestor.catalog import load_catalog
from ingestor.cli import UsageProblem
from ingestor.cli.ops import DAY
from ingestor.cli.runtime import handle_errors, runtime
from ingestor.constituents.model import parse_email
from ingestor.constituents.store import org_id
from ingestor.notify.run import NotifyOptions, notify, resolve


@click.command("notify")
@click.option("--org", help="Only this organisation.")
@click.option("--since", type=DAY, help="Events of report dates from this day [default: NOTIFY_LOOKBACK_DAYS ago].")
@click.option(
    "--dry-run",
    "dry_run",
    type=click.Path(path_type=Path, file_okay=False),
    help="Write each digest as an .eml file into this directory instead of sending; records nothing.",
)
@click.option("--test-to", help="Send every digest to this one address instead (tester mode); records nothing.")
@click.option("--mark-sent", "mark_sent", multiple=True, help="An in-doubt digest (ticket) was delivered.")
@click.option("--resend", multiple=True, help="An in-doubt digest (ticket) was not delivered: send it again.")
@handle_errors
def notify_command(
    org: str | None,
    since: date | None,
    dry_run: Path | None,
    test_to: str | None,
    mark_sent: tuple[str, ...],
    resend: tuple[str, ...],
) -> None:
    """Send each organisation whose interval is due one e-mail with what is new for it.

    Grouped by report type, with one CSV attachment per type; recorded in ss_notifications before and
    after sending, so each digest goes out once. A failed one is retried on the next run. Exit codes: 0
    sent (or nothing due), 4 some failed or in doubt, 1 none could be sent, 2 bad settings, 3 another
    notify is running.
    """
    if dry_run and test_to:
        raise UsageProblem("--dry-run and --test-to exclude each other")
    if test_to:
        try:
            test_to = parse_email(test_to)
        except ValueError as exc:
            raise UsageProblem(f"--test-to: {exc}") from None
    with runtime(need_db=True) as rt:
        db = rt.require_db()
        for ticket in (*mark_sent, *resend):
            if not resolve(db, ticket, sent=ticket in mark_sent):
                raise UsageProblem(f"{ticket}: not an in-doubt digest (see `orgs status` or ss_notifications)")
            click.echo(f"{ticket}: {'marked sent' if ticket in mark_sent else 'will be sent again'}")
        if mark_sent and not (resend or org or since or dry_run or test_to):
            return
        if org is not None:
            with db.connection() as conn:
                if org_id(conn, org) is None:
                    raise UsageProblem(f"no organisation named {org!r} (see `orgs list`)")
        options = NotifyOptions(org=org, since=since, dry_run=dry_run, test_to=test_to)
        result = notify(rt.settings, db, load_catalog(), options, stop=rt.stop)
    for line in result.errors:
        click.echo(f"failed: {line}", err=True)
    for line in result.in_doubt:
        click.echo(
            f"in doubt: {line}: the SMTP server may have accepted it; check, then "
            "`notify --mark-sent TICKET` or `notify --resend TICKET`",
            err=True,
        )
    if result.without_contact:
        click.echo(f"no abuse address, no digest: {', '.join(result.without_contact)}", err=True)
    if dry_run is not None:
        click.echo(f"{len(result.written)} digest(s) written to {dry_run} ({result.nothing_new} with nothing new)")
    else:
        click.echo(
            f"{result.due} organisation(s) due: {result.prepared} digest(s) prepared, {result.sent} sent"
            f" ({result.retried} retried), {result.failed} failed, {result.nothing_new} with nothing new"
            f" [{result.seconds:.1f} s]"
        )
    sys.exit(result.exit_code)
