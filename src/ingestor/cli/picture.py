"""The picture: ``findings``, ``trends``, ``report --html`` and ``rollup rebuild`` (docs/findings.md,
docs/report.md).

``findings`` prints like ``search``: a table on a terminal, CSV when piped, ``--format`` to choose.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import click

from ingestor.catalog import SEVERITIES
from ingestor.cli import params
from ingestor.cli.ops import ASN, DAY, TERMINAL_LIMIT, TYPE_NAME, InputError, emit_rows, report_format_options
from ingestor.cli.runtime import Runtime, handle_errors, runtime
from ingestor.lifecycle import FindingsPolicy, rebuild
from ingestor.ops.formats import FORMATS, json_value
from ingestor.ops.screen import Screen
from ingestor.picture.findings import COLUMNS, STATES, FindingFilter, list_findings, organisation_id
from ingestor.picture.trends import collect_trends, render_trends, trends_json


def _today() -> date:
    return datetime.now(UTC).date()


def _org(rt: Runtime, name: str | None) -> int | None:
    if name is None:
        return None
    with rt.require_db().connection() as conn:
        try:
            return organisation_id(conn, name)
        except ValueError as exc:
            raise InputError(str(exc)) from None


@click.command()
@click.option("--state", type=click.Choice(STATES), help="Only open, or only resolved, findings.")
@click.option("--type", "types", type=TYPE_NAME, multiple=True, help="Report type; repeatable.")
@click.option("--org", "org", help="Only the findings of this organisation.")
@click.option("--since", type=DAY, help="Active since: last seen, or resolved, on or after (YYYY-MM-DD, today, 7d).")
@click.option("--severity", type=click.Choice(SEVERITIES, case_sensitive=False), help="This severity or higher.")
@click.option("--asn", "asns", type=ASN, multiple=True, help="AS number (64500 or AS64500); repeatable.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Output format [default: table, csv when piped].")
@click.option(
    "--limit",
    type=click.IntRange(0, params.MAX_ROWS),
    help=f"At most this many rows; 0 = all [default: {TERMINAL_LIMIT} on a terminal, all when piped].",
)
@handle_errors
def findings(
    state: str | None,
    types: tuple[str, ...],
    org: str | None,
    since: date | None,
    severity: str | None,
    asns: tuple[int, ...],
    fmt: str | None,
    limit: int | None,
) -> None:
    """Findings with their lifecycle: first and last seen, resolved at, days to fix, reopen count.

    A finding is resolved once absent from FINDINGS_RESOLVE_DAYS full report days of its type (days
    without a file, and delta days, do not count), and reopened if it comes back. The most recently
    active come first.
    """
    with runtime(need_db=True, read_only=True) as rt:
        filters = FindingFilter(
            state, tuple(dict.fromkeys(types)), _org(rt, org), since, severity and severity.lower(), tuple(asns)
        )
        with rt.require_db().connection() as conn:
            emit_rows(
                lambda n, _raw: list_findings(conn, filters, n),
                COLUMNS,
                fmt,
                limit,
                f"findings: {filters.describe()}",
                stop=rt.stop,
            )


@click.command()
@click.option("--weeks", type=click.IntRange(1, 104), default=6, show_default=True, help="Weeks shown.")
@click.option("--type", "types", type=TYPE_NAME, multiple=True, help="Report type; repeatable.")
@click.option("--org", "org", help="Only the findings of this organisation.")
@report_format_options()
@handle_errors
def trends(weeks: int, types: tuple[str, ...], org: str | None, fmt: str | None, as_json: bool) -> None:
    """Per report type: open findings now and a sparkline of them, subjects a day, new, resolved, reopened.

    Read from the daily rollup (never the events), one character per report day.
    """
    until = _today()
    since = until - timedelta(days=7 * weeks - 1)
    with runtime(need_db=True, read_only=True) as rt:
        org_id = _org(rt, org)
        with rt.require_db().connection() as conn:
            data = collect_trends(conn, since, until, org_id=org_id, types=tuple(types))
    if as_json or fmt == "json":
        click.echo(json.dumps(json_value(trends_json(data)), indent=2))
    else:
        render_trends(data, Screen())


@click.command()
@click.option(
    "--html", "target", type=click.Path(path_type=Path, dir_okay=False), required=True, help="HTML file to write."
)
@click.option("--since", type=DAY, help="First report date shown [default: 90 days ago].")
@click.option("--until", type=DAY, help="Last report date shown [default: today].")
@click.option("--org", "org", help="Only the findings of this organisation.")
@handle_errors
def report(target: Path, since: date | None, until: date | None, org: str | None) -> None:
    """Write one self-contained HTML report: open findings over time, new against resolved per week, top
    report types and ASNs, time to fix, the feed's own health.

    The charts are drawn now, as inline SVG: the file loads nothing (no script, font or image) and can
    be mailed and opened offline.
    """
    from ingestor.picture.report import collect_report, render_html, write_report  # matplotlib: only here

    until = until or _today()
    since = since or until - timedelta(days=89)
    if since > until:
        raise InputError(f"--since {since} is after --until {until}")
    with runtime(need_db=True, read_only=True) as rt:
        org_id = _org(rt, org)
        with rt.require_db().connection() as conn:
            data = collect_report(conn, rt.settings, since, until, org_id=org_id, organisation=org)
    document = render_html(data)
    try:
        write_report(target, document)
    except OSError as exc:
        raise click.ClickException(f"cannot write {target}: {exc.strerror or exc}") from None
    click.echo(f"written: {target} ({len(document.encode()) // 1024:,} kB, report dates {since} to {until})")


@click.group()
def rollup() -> None:
    """The daily rollup and the finding lifecycle it counts."""


@rollup.command("rebuild")
@click.option("--type", "types", type=TYPE_NAME, multiple=True, help="Only this report type; repeatable.")
@handle_errors
def rebuild_command(types: tuple[str, ...]) -> None:
    """Recompute the finding lifecycle and the daily rollup from what was recorded.

    Applies the current FINDINGS_RESOLVE_DAYS and SS_DELTA_TYPES to every report day and finding; rows and
    subjects are counted again from the stored events, and kept as they were for report dates a prune
    emptied. One transaction per report type: a running service's files of that type wait meanwhile.
    """
    with runtime(need_db=True) as rt, rt.require_db().connection() as conn:
        done = rebuild(conn, FindingsPolicy.from_settings(rt.settings), types or None)
    click.echo(f"rebuilt {len(done)} report type(s)" + (f": {', '.join(done)}" if done else ""))


COMMANDS = (findings, trends, report, rollup)
"""Registered on the main group by ``ingestor.cli``."""
