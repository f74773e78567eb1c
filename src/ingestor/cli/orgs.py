"""``orgs``: the constituents (organisations, their contacts and networks) and who owns which events.

See docs/constituents.md. Bad input is one line (or one line per problem of an import file) and exit 2;
nothing of a file with a problem is imported.
"""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any, cast

import click

from ingestor.cli import UsageProblem, params
from ingestor.cli.ops import DAY, TYPE_NAME, _today, emit_rows  # pyright: ignore[reportPrivateUsage]
from ingestor.cli.runtime import handle_errors, runtime
from ingestor.constituents import QUERIES, files, ripe, store
from ingestor.constituents.model import OrgInput
from ingestor.constituents.rematch import rematch as run_rematch
from ingestor.ops.formats import FORMATS, json_value, write_rows
from ingestor.ops.search import EVENT_COLUMNS, iter_rows

COUNT_COLUMNS = ("report_type", "events", "findings", "first_date", "last_date")
DIGEST_COLUMNS = (
    "id",
    "ticket",
    "status",
    "events",
    "findings",
    "suppressed",
    "recipients",
    "prepared_at",
    "sent_at",
    "attempts",
    "error",
)


def _text(value: Any) -> str:
    if isinstance(value, list):
        items = cast("list[object]", value)
        return ", ".join(str(item) for item in items)
    return "" if value is None else str(value)


def _dicts(columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [dict(zip(columns, row, strict=True)) for row in rows]


@click.group()
def orgs() -> None:
    """Constituents: organisations, their abuse contacts and networks (CIDRs, ASNs, domains)."""


def _print_import(result: store.ImportResult) -> None:
    click.echo(
        f"imported: {len(result.created)} new, {len(result.updated)} replaced organisation(s), "
        f"{result.networks} network(s), {result.contacts} contact(s)"
    )
    if result.removed:
        click.echo(f"removed (no longer in the RIPE data): {', '.join(result.removed)}")
    if result.replaced:
        click.echo(f"replaced by a manual entry with their handle: {', '.join(result.replaced)}")
    if result.skipped:
        click.echo(f"kept (a manual entry overrides the RIPE one): {', '.join(result.skipped)}")
    click.echo("events loaded from now on are matched with these; `orgs rematch` re-matches the stored ones")


@orgs.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(("csv", "yaml")), help="File format [default: by suffix].")
@handle_errors
def import_orgs(paths: tuple[Path, ...], fmt: str | None) -> None:
    """Create or replace organisations from CSV or YAML files (formats: docs/constituents.md).

    Every line is validated first; with any problem, each is printed with its file and line and nothing
    is imported (exit 2). An organisation named in a file is replaced whole (contacts, networks, settings);
    others are left alone.
    """
    found: dict[str, OrgInput] = {}
    problems: list[str] = []
    for path in paths:
        try:
            for org in files.read_orgs_file(path, fmt):
                if org.name in found:
                    problems.append(f"{path.name}: {org.name}: also in another file")
                found[org.name] = org
        except files.ImportProblems as exc:
            problems.extend(exc.problems)
    if problems:
        raise files.ImportProblems(problems)
    with runtime(need_db=True) as rt, rt.require_db().connection() as conn:
        result = store.replace_orgs(conn, list(found.values()))
    _print_import(result)


@orgs.command("import-ripe")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--country", "countries", multiple=True, help="Keep the blocks of this country code; repeatable.")
@click.option("--org", "handles", multiple=True, help="Keep this organisation handle (ORG-...); repeatable.")
@click.option("--prune", is_flag=True, help="Remove RIPE-imported organisations this import no longer has.")
@handle_errors
def import_ripe(paths: tuple[Path, ...], countries: tuple[str, ...], handles: tuple[str, ...], prune: bool) -> None:
    """Import organisations from RIPE database split files (ripe.db.inetnum[.gz], inet6num, aut-num,
    organisation, role): their address blocks, ASNs and abuse-c mailbox. Manual entries override them."""
    for code in countries:
        if len(code) != 2 or not code.isalpha():
            raise UsageProblem(f"--country: not a two-letter country code: {code!r}")
    try:
        result = ripe.read_ripe(paths, countries=countries, handles=handles)
    except (ValueError, OSError, EOFError) as exc:
        raise UsageProblem(str(exc)) from None
    for problem in result.problems[:20]:
        click.echo(f"skipped: {problem}", err=True)
    if len(result.problems) > 20:
        click.echo(f"skipped: ... and {len(result.problems) - 20} more objects", err=True)
    if result.without_mailbox:
        click.echo(
            f"{len(result.without_mailbox)} organisation(s) without an abuse mailbox left out: "
            + ", ".join(result.without_mailbox[:10])
            + (" ..." if len(result.without_mailbox) > 10 else ""),
            err=True,
        )
    click.echo(f"read {result.objects} object(s): {len(result.orgs)} organisation(s), {result.networks} block(s)")
    with runtime(need_db=True) as rt, rt.require_db().connection() as conn:
        imported = store.replace_orgs(conn, result.orgs, prune_ripe=prune)
    _print_import(imported)


@orgs.command("list")
@click.option("--tag", help="Only organisations with this tag.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Output format [default: table / csv when piped].")
@handle_errors
def list_orgs(tag: str | None, fmt: str | None) -> None:
    """Organisations with their contacts, network counts and last digest."""
    columns = (
        "name",
        "source",
        "handle",
        "emails",
        "cidrs",
        "asns",
        "domains",
        "language",
        "tags",
        "notify_interval_hours",
        "notify_mode",
        "last_digest",
    )
    with runtime(need_db=True, read_only=True) as rt, rt.require_db().connection() as conn:
        rows = store.list_orgs(conn, tag)
    emit_rows(lambda n, raw: (row for row in rows[:n]), columns, fmt, 0, "organisations")  # pyright: ignore[reportUnknownLambdaType]


@orgs.command("show")
@click.argument("name")
@click.option("--days", type=params.days(1), default=30, show_default=True, help="Event counts over these days.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def show(name: str, days: int, as_json: bool) -> None:
    """One organisation: settings, contacts, networks, its events and findings per report type, digests."""
    with runtime(need_db=True, read_only=True) as rt, rt.require_db().connection() as conn:
        detail = store.org_detail(conn, name)
        if detail is None:
            raise UsageProblem(f"no organisation named {name!r} (see `orgs list`)")
        since = _today() - timedelta(days=days)
        params_ = {"org_id": detail["id"], "since": since, "limit": 10}
        counts = _dicts(COUNT_COLUMNS, conn.execute(QUERIES["org_event_counts"], params_).fetchall())
        digests = _dicts(DIGEST_COLUMNS, conn.execute(QUERIES["org_digests"], params_).fetchall())
    data = {**detail, "events_since": since, "events": counts, "digests": digests}
    if as_json:
        click.echo(json.dumps(json_value(data), indent=2))
        return
    for key in (
        "name",
        "source",
        "handle",
        "country",
        "language",
        "tags",
        "emails",
        "notify_enabled",
        "notify_interval_hours",
        "notify_types",
        "notify_min_severity",
        "notify_mode",
        "notify_format",
    ):
        value = detail.get(key)
        text = _text(value)
        click.echo(f"{key:22} {text}")
    for key in ("cidrs", "asns", "domains"):
        entries: list[Any] = detail.get(key) or []
        values = [str(v) for v in entries]
        click.echo(f"{key:22} {len(values)}: {' '.join(values[:20])}{' ...' if len(values) > 20 else ''}")
    click.echo(f"\nevents and findings since {since}:")
    write_rows(counts, COUNT_COLUMNS, "table", sys.stdout)
    click.echo("\nlatest digests:")
    write_rows(
        digests, ("ticket", "status", "events", "findings", "suppressed", "sent_at", "error"), "table", sys.stdout
    )


@orgs.command("remove")
@click.argument("names", nargs=-1, required=True)
@handle_errors
def remove(names: tuple[str, ...]) -> None:
    """Remove organisations (with their contacts and networks). Their delivery log is kept."""
    with runtime(need_db=True) as rt, rt.require_db().connection() as conn:
        missing = store.remove_orgs(conn, names)
    if missing:
        raise UsageProblem(f"no organisation named {', '.join(repr(m) for m in missing)}; nothing removed")
    click.echo(f"removed {len(set(names))} organisation(s); `orgs rematch` takes them off their stored events")


@orgs.command()
@click.option("--since", type=DAY, help="Only report dates from this day (YYYY-MM-DD, 7d) [default: all].")
@handle_errors
def rematch(since: date | None) -> None:
    """Match the stored events again with the constituents as they are now (one report date at a time)."""
    with runtime(need_db=True) as rt:
        result = run_rematch(rt.require_db(), since=since, stop=rt.stop)
    click.echo(
        f"rematched {result.events} event(s) of {result.dates} report date(s) in {result.seconds:.1f} s "
        f"({result.rate:,.0f} events/s): {result.changed} changed owner"
    )


@orgs.command()
@click.option("--since", type=DAY, help="Report dates from this day [default: 7 days ago].")
@click.option("--events", "show_events", is_flag=True, help="List the events themselves, not counts per type.")
@click.option("--type", "types", type=TYPE_NAME, multiple=True, help="Report type (with --events); repeatable.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Output format [default: table / csv when piped].")
@click.option("--limit", type=click.IntRange(0, params.MAX_ROWS), help="At most this many rows; 0 = all.")
@handle_errors
def unmatched(
    since: date | None, show_events: bool, types: tuple[str, ...], fmt: str | None, limit: int | None
) -> None:
    """Events no organisation owns: what must be routed by hand (or a network missing from a constituent)."""
    since = since or _today() - timedelta(days=7)
    with runtime(need_db=True, read_only=True) as rt, rt.require_db().connection() as conn:
        if show_events:

            def rows(n: int | None, raw: bool) -> Any:
                values = {"since": since, "types": list(types) or None, "limit": n, "with_raw": raw}
                return iter_rows(conn, QUERIES["unmatched_events"], values)

            emit_rows(rows, EVENT_COLUMNS, fmt, limit, f"unmatched events since {since}")
            return
        columns = ("report_type", "events", "hosts", "first_date", "last_date")
        found = _dicts(columns, conn.execute(QUERIES["unmatched_summary"], {"since": since}).fetchall())
    emit_rows(lambda n, raw: (row for row in found), columns, fmt, limit, f"unmatched events since {since}")  # pyright: ignore[reportUnknownLambdaType]


@orgs.command("status")
@click.option("--days", type=params.days(1), default=7, show_default=True, help="Events of these days.")
@click.option("--limit", type=click.IntRange(1, params.MAX_ROWS), default=1000, show_default=True)
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Output format [default: table / csv when piped].")
@handle_errors
def org_status(days: int, limit: int, fmt: str | None) -> None:
    """Per organisation: events and hosts of the last days, last digest, failed and in-doubt digests."""
    since = _today() - timedelta(days=days)
    with runtime(need_db=True, read_only=True) as rt, rt.require_db().connection() as conn:
        found = store.org_status(conn, since=since, limit=limit)
    columns = store.ORG_STATUS_COLUMNS
    emit_rows(lambda n, raw: (row for row in found), columns, fmt, 0, f"organisations since {since}")  # pyright: ignore[reportUnknownLambdaType]
