"""Operator commands: ``status``, ``search``, ``new``, ``import``, ``types``, ``catalog refresh``, ``prune``.

Output is a table on a terminal and clean CSV/JSON when piped or asked (``--format``/``--json``). Bad input
gets one line on stderr and exit code 2; database and file problems exit 1 (see ``handle_errors``).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import httpx

from ingestor.catalog import SEVERITIES, Catalog, data_catalog_path, load_catalog
from ingestor.catalog import refresh as catalog_refresh
from ingestor.catalog.refresh import PUBLISHED_URL
from ingestor.cli import UsageProblem, params
from ingestor.cli.output import chosen_format, format_option, is_terminal, print_result, reporter_for_terminal
from ingestor.cli.runtime import Runtime, handle_errors, runtime
from ingestor.config import Settings
from ingestor.db.lock import IngestionLock
from ingestor.limits import FileLimits
from ingestor.ops import filters as flt
from ingestor.ops.formats import FORMATS, json_value, write_rows
from ingestor.ops.imports import ImportPlan, ImportProblem, check_named_path, plan_import, run_import
from ingestor.ops.inventory import collect_types
from ingestor.ops.render import render_prune, render_status, render_types
from ingestor.ops.retention import DEFAULT_BATCH
from ingestor.ops.retention import check_arguments as check_prune
from ingestor.ops.retention import prune as prune_events
from ingestor.ops.screen import Screen
from ingestor.ops.search import (
    EVENT_COLUMNS,
    FINDING_COLUMNS,
    explain,
    new_findings,
    new_params,
    search_events,
    unknown_types,
)
from ingestor.ops.status import collect_status
from ingestor.redaction import first_line

EVENT_PRIORITY = (
    "report_date",
    "report_type",
    "ip",
    "port",
    "severity",
    "hostname",
    "asn",
    "geo",
    "tag",
    "event_time",
    "id",
)
"""The columns of ``search`` in order of importance: on a narrow terminal the last ones are left out."""
FINDING_PRIORITY = (
    "report_type",
    "first_seen",
    "ip",
    "port",
    "severity",
    "hostname",
    "finding_key",
    "times_seen",
    "asn",
    "last_seen",
    "geo",
    "tag",
    "report_date",
    "event_time",
    "id",
)
"""The columns of ``new`` in order of importance."""

TERMINAL_LIMIT = 100
"""Rows shown on a terminal unless ``--limit`` says otherwise; piped output is unlimited by default."""

F = TypeVar("F", bound=Callable[..., Any])


class InputError(UsageProblem):
    """Bad input found after parsing (e.g. a report type nobody knows): one line, exit code 2."""


if TYPE_CHECKING:
    _ParamType = click.ParamType[Any, str]  # generic since click 8.2
else:
    _ParamType = click.ParamType


class Parsed(_ParamType):
    """A click type from one of :mod:`ingestor.ops.filters`' parsers (``ValueError`` → usage error)."""

    def __init__(self, name: str, parse: Callable[[str], Any]) -> None:
        self.name = name
        self._parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self._parse(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def report_format_options(*, csv_piped: bool = False) -> Callable[[F], F]:
    """``--format`` (and ``--json``) of the commands that print a report."""
    choices = ("table", "csv", "json") if csv_piped else ("table", "json")
    default = "table on a terminal, csv when piped" if csv_piped else "table (plain text when piped)"

    def decorate(command: F) -> F:
        command = click.option("--json", "as_json", is_flag=True, help="Same as --format json.")(command)
        return click.option("--format", "fmt", type=click.Choice(choices), help=f"Output format [default: {default}].")(
            command
        )

    return decorate


def _today() -> date:
    """Today (UTC): the one clock of these commands' relative dates, windows and cutoffs."""
    return datetime.now(UTC).date()


NETWORK = Parsed("address|cidr", flt.parse_network)
ASN = Parsed("asn", flt.parse_asn)
HOSTNAME = Parsed("hostname", flt.parse_hostname)
TYPE_NAME = Parsed("type", flt.parse_type_name)
DAY = Parsed("date", lambda value: flt.parse_day(value, _today()))


def filter_options(command: F) -> F:
    """The filters and output options shared by ``search`` and ``new``."""
    options = [
        click.option("--ip", "network", type=NETWORK, help="An address or a CIDR network (IPv4 or IPv6)."),
        click.option("--asn", "asns", type=ASN, multiple=True, help="AS number (64500 or AS64500); repeatable."),
        click.option("--hostname", type=HOSTNAME, help="Exact hostname, or *.example.com for names below it."),
        click.option("--type", "types", type=TYPE_NAME, multiple=True, help="Report type; repeatable."),
        click.option(
            "--severity", type=click.Choice(SEVERITIES, case_sensitive=False), help="This severity or higher."
        ),
        click.option("--tag", help="Text contained in the tag (case-insensitive)."),
        click.option("--text", help="Text contained anywhere in the raw row (case-insensitive; scans)."),
        click.option("--org", help="Events of this organisation (see `orgs list`)."),
        click.option(
            "--format",
            "fmt",
            type=click.Choice(FORMATS),
            help="Output format [default: table on a terminal, csv when piped].",
        ),
        click.option(
            "--limit",
            type=click.IntRange(0, params.MAX_ROWS),
            help=f"At most this many rows; 0 = all [default: {TERMINAL_LIMIT} on a terminal, all when piped].",
        ),
        click.option(
            "--wide", is_flag=True, help="On a terminal, show every column (else those that fit, most useful first)."
        ),
        click.option("--explain", "show_plan", is_flag=True, help="Print PostgreSQL's query plan instead of rows."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _filters(**values: Any) -> flt.EventFilter:
    hostname = values.get("hostname") or (None, None)
    try:
        return flt.EventFilter(
            network=values.get("network"),
            asns=tuple(values.get("asns") or ()),
            hostname=hostname[0],
            hostname_suffix=hostname[1],
            types=tuple(dict.fromkeys(values.get("types") or ())),
            severity=values.get("severity") and values["severity"].lower(),
            since=values.get("since"),
            until=values.get("until"),
            tag=values.get("tag") or None,
            text=values.get("text") or None,
            org=values.get("org") or None,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _resolve_org(rt: Runtime, filters: flt.EventFilter) -> flt.EventFilter:
    """The filters with ``--org``'s name resolved to the organisation's id (an unknown name: exit 2)."""
    if filters.org is None:
        return filters
    from ingestor.constituents.store import org_id

    with rt.require_db().connection() as conn:
        found = org_id(conn, filters.org)
    if found is None:
        raise InputError(f"no organisation named {filters.org!r} (see `orgs list`)")
    return replace(filters, org_id=found)


def _check_types(rt: Runtime, types: tuple[str, ...]) -> None:
    """Say (on stderr) when a report type is known to neither the catalog nor the database: probably a typo.

    Not an error: report types the catalog does not know are loaded and searched like any other.
    """
    if not types:
        return
    with rt.require_db().connection() as conn:
        unknown = unknown_types(conn, load_catalog(), types)
    if unknown:
        click.echo(
            f"note: report type {', '.join(unknown)} is not in the catalog and nothing of it is stored (see `types`)",
            err=True,
        )


def _limit(limit: int | None) -> int | None:
    if limit is None:
        return TERMINAL_LIMIT if is_terminal() else None
    return limit or None


def emit_rows(
    rows_of: Callable[[int | None, bool], Generator[dict[str, Any], None, None]],
    columns: tuple[str, ...],
    fmt: str | None,
    limit: int | None,
    title: str,
    priority: tuple[str, ...] = (),
    stop: threading.Event | None = None,
) -> int:
    """Stream rows to stdout; on a terminal, say when the limit cut the output or columns were left out."""
    fmt = fmt or ("table" if is_terminal() else "csv")
    wanted = _limit(limit)
    rows = rows_of(None if wanted is None else wanted + 1, fmt in ("json", "ndjson"))
    more = False

    def limited() -> Iterator[dict[str, Any]]:
        nonlocal more
        for count, row in enumerate(rows):
            if wanted is not None and count >= wanted:
                more = True
                return
            if stop is not None and stop.is_set():  # Ctrl-C: stop streaming (the command then exits 130)
                return
            yield row

    left_out: list[str] = []
    try:
        written = write_rows(
            limited(),
            columns,
            fmt,
            sys.stdout,
            title=title if fmt == "table" else None,
            priority=priority,
            left_out=left_out,
        )
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python from complaining at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    finally:
        rows.close()
    if more and (is_terminal() or sys.stderr.isatty()):
        click.echo(f"{written} rows shown; more match (--limit 0 shows all)", err=True)
    if left_out:
        click.echo(
            f"columns left out to fit the terminal: {', '.join(left_out)}"
            " (--wide shows them; --format csv or json has all)",
            err=True,
        )
    return written


@click.command()
@click.option("--since", type=DAY, help="Report date from (YYYY-MM-DD, today, yesterday, 7d).")
@click.option("--until", type=DAY, help="Report date up to, inclusive.")
@filter_options
@handle_errors
def search(fmt: str | None, limit: int | None, wide: bool, show_plan: bool, **values: Any) -> None:
    """Events matching every given filter, newest report date first.

    \b
    Indexes: --ip idx_ss_events_ip; --asn idx_ss_events_asn; --hostname (exact) idx_ss_events_hostname;
    --since/--until (and --type with them) the unique key, which leads with the report date.
    --severity, --tag, --text and --hostname '*.domain' have no index of their own.
    """
    filters = _filters(**values)
    with runtime(need_db=True, read_only=True) as rt:
        _check_types(rt, filters.types)
        filters = _resolve_org(rt, filters)
        db = rt.require_db()
        if show_plan:
            with db.connection() as conn:
                click.echo("\n".join(explain(conn, "search_events", filters.params(_limit(limit)))))
            return
        with db.connection() as conn:
            title = f"events: {filters.describe()}"
            emit_rows(
                lambda n, raw: search_events(conn, filters, n, with_raw=raw),
                EVENT_COLUMNS,
                fmt,
                limit,
                title,
                priority=() if wide else EVENT_PRIORITY,
                stop=rt.stop,
            )


@click.command()
@click.option("--since", type=DAY, required=True, help="First day of the window (YYYY-MM-DD, today, yesterday, 7d).")
@click.option("--until", type=DAY, help="Last day of the window, inclusive [default: today].")
@filter_options
@handle_errors
def new(
    since: date, until: date | None, fmt: str | None, limit: int | None, wide: bool, show_plan: bool, **values: Any
) -> None:
    """Findings first seen between --since and --until: absent from every earlier report date.

    A finding is a report type plus its subject IP and service port (or the type's natural key). Each
    is shown with the event that first reported it; the filters apply to that event.
    """
    filters = _filters(**values)
    until = until or _today()
    try:
        flt.check_window(since, until)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    with runtime(need_db=True, read_only=True) as rt:
        _check_types(rt, filters.types)
        filters = _resolve_org(rt, filters)
        db = rt.require_db()
        if show_plan:
            with db.connection() as conn:
                plan = explain(conn, "new_findings", new_params(filters, since, until, _limit(limit)))
            click.echo("\n".join(plan))
            return
        title = f"new findings {since} to {until}: {filters.describe()}"
        with db.connection() as conn:
            emit_rows(
                lambda n, raw: new_findings(conn, filters, since, until, n, with_raw=raw),
                FINDING_COLUMNS,
                fmt,
                limit,
                title,
                priority=() if wide else FINDING_PRIORITY,
                stop=rt.stop,
            )


@click.command("import")
@click.argument(
    "paths", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False)
)  # our check: one line, exit 2
@click.option("--type", "report_type", type=TYPE_NAME, help="Report type of every file (else from its name).")
@click.option("--date", "report_date", type=DAY, help="Report date of every file (else from its name).")
@click.option("--force", is_flag=True, help="Load files again even if already imported (rows stay deduplicated).")
@format_option()
@handle_errors
def import_files(
    paths: tuple[Path, ...],
    report_type: str | None,
    report_date: date | None,
    force: bool,
    fmt: str | None,
    as_json: bool,
) -> None:
    """Load local report files: CSV, .csv.gz, or .zip archives of CSVs; directories recursively.

    The report type and date come from each file name (YYYY-MM-DD-<type>-<id>.csv, inside a .gz or
    .zip too) unless given; files in a directory whose names are not report names are skipped (and
    said). Files already imported (same content) are skipped unless --force. Exit codes: 0 all loaded
    or skipped, 4 some failed, 1 none could be loaded, 2 a path that does not exist, cannot be read or
    has no report name, 3 another ingestor is running.
    """
    unusable = [problem for path in paths if (problem := check_named_path(path)) is not None]
    _refuse_paths(unusable)
    plans: list[ImportPlan] = []

    def plan_files(settings: Settings) -> None:  # before the database starts: a misnamed file is a usage error
        plan = plan_import(
            list(paths), report_type=report_type, report_date=report_date, limits=FileLimits.from_settings(settings)
        )
        _refuse_paths(plan.misnamed)
        plans.append(plan)

    with runtime(need_db=True, check=plan_files) as rt, ExitStack() as stack:
        plan = plans[0]
        for problem in plan.problems:
            click.echo(f"error: {problem}", err=True)
        for skipped in plan.skipped:
            click.echo(f"skipped {skipped}", err=True)
        for duplicate in plan.duplicates:
            click.echo(f"skipped {duplicate}", err=True)
        if not plan.reports and not plan.problems:
            raise InputError(f"nothing to import: no file named like a report in {', '.join(map(str, paths))}")
        reporter = reporter_for_terminal() if plan.reports else None
        if reporter is not None:
            stack.enter_context(reporter)
        outcome = run_import(rt.settings, rt.require_db(), plan, force=force, stop=rt.stop, reporter=reporter)
    if outcome.result is not None:
        print_result(
            outcome.result,
            chosen_format(fmt, as_json),
            files_shown=reporter is not None and reporter.files_shown > 0,
        )
    if outcome.already_loaded:
        click.echo(
            f"{len(outcome.already_loaded)} file(s) already imported, skipped (--force loads them again): "
            + ", ".join(outcome.already_loaded),
            err=True,
        )
    code = outcome.result.exit_code if outcome.result is not None else 0
    if plan.problems:
        if len(plan.problems) > 1:
            click.echo(f"{len(plan.problems)} files could not be imported", err=True)
        usable = outcome.result is not None and (outcome.result.totals.files_loaded or outcome.already_loaded)
        code = max(code, 4) if usable else 1
    sys.exit(code)


def _refuse_paths(problems: list[ImportProblem]) -> None:
    """Paths that cannot be imported at all: one line each, exit 2, before anything starts."""
    if problems:
        for problem in problems[:-1]:
            click.echo(f"error: {problem}", err=True)
        raise InputError(str(problems[-1]))


@click.command()
@click.option("--days", type=click.IntRange(min=1, max=366), default=7, show_default=True, help="Days shown.")
@click.option("--runs", type=click.IntRange(min=1, max=1000), default=10, show_default=True, help="Runs shown.")
@click.option("--api", "ask_api", is_flag=True, help="Also ask the API whether the key has subscriptions.")
@click.option("--orgs", "per_org", is_flag=True, help="Also per organisation: events, hosts, digests (scans --days).")
@report_format_options()
@handle_errors
def status(days: int, runs: int, ask_api: bool, per_org: bool, fmt: str | None, as_json: bool) -> None:
    """Ingestion health: latest runs, failed files, alarms on the feed, column changes, unknown report types,
    events per type, database size; with --orgs, per organisation."""
    from ingestor.constituents.store import ORG_STATUS_COLUMNS, org_status

    with runtime(need_db=True, read_only=True, need_api=ask_api) as rt:
        db = rt.require_db()
        with db.connection() as conn:
            client = rt.client if ask_api else None
            data = collect_status(conn, days=days, runs=runs, today=_today(), settings=rt.settings, client=client)
            if per_org:
                data["organisations"] = org_status(conn, since=_today() - timedelta(days=days))
        data["database"]["ingestion_lock"] = IngestionLock(db).holder()
    if (fmt or "table") == "json" or as_json:
        click.echo(json.dumps(json_value(data), indent=2))
    else:
        screen = Screen()
        render_status(data, screen)
        if per_org:
            write_rows(data["organisations"], ORG_STATUS_COLUMNS, "table", screen.out, title="organisations")


TYPE_COLUMNS = ("type", "family", "default_severity", "in_catalog", "events", "last_date", "files", "offered")


@click.command()
@click.option("--api", "ask_api", is_flag=True, help="Also ask the API (reports/subscribed, reports/types).")
@click.option("--seen", is_flag=True, help="Only types with events or ledger entries.")
@report_format_options(csv_piped=True)
@handle_errors
def types(ask_api: bool, seen: bool, fmt: str | None, as_json: bool) -> None:
    """Report types: the catalog's, those in the database (with event counts), unknown ones, the API's."""
    with runtime(need_db=True, read_only=True, need_api=ask_api) as rt, rt.require_db().connection() as conn:
        data = collect_types(conn, load_catalog(), rt.client if ask_api else None)
    if seen:
        data["types"] = [item for item in data["types"] if item["events"] or item["files"]]
    fmt = "json" if as_json else fmt or ("table" if is_terminal() else "csv")
    if fmt == "json":
        click.echo(json.dumps(json_value(data), indent=2))
    elif fmt == "csv":
        write_rows(data["types"], TYPE_COLUMNS, "csv", sys.stdout, raw_column=None)
    else:
        render_types(data, Screen())


@click.group()
def catalog() -> None:
    """The report-type catalog (columns, subject side and default severity of every type)."""


@catalog.command()
@click.option("--from", "source", default=PUBLISHED_URL, show_default=True, help="reports.json file or URL.")
@click.option(
    "--to",
    "target",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Catalog file to write [default: catalog.json in the data directory, SS_DATA_DIR].",
)
@click.option("--yes", "-y", is_flag=True, help="Write without asking (required when stdin is not a terminal).")
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@handle_errors
def refresh(source: str, target: Path | None, yes: bool, dry_run: bool) -> None:
    """Rebuild the catalog from Shadowserver's published reports.json, into the data directory.

    First shows what changes against the catalog in use: new and removed report types, and per type new
    and removed columns. Then asks on a terminal, or needs --yes. The catalog shipped in the package is
    never modified; the written one is used by every command from then on, and by a running service from
    its next cycle.
    """
    with runtime():
        in_force = data_catalog_path()
        target = target or in_force
        try:
            raw = catalog_refresh.read_source(source)
            published = catalog_refresh.parse_published(raw)
        except httpx.HTTPError as exc:
            raise click.ClickException(f"cannot fetch {source}: {first_line(exc)}") from None
        except OSError as exc:
            raise click.ClickException(f"{exc.filename or source}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise click.ClickException(f"{source}: {first_line(exc)}") from None
        current = _catalog_to_replace(target)
        new = catalog_refresh.build_catalog(published, current, catalog_refresh.origin_of(source, raw))
        diff = catalog_refresh.diff_catalogs(current, new)
        click.echo(f"{source}: {len(new)} report types; compared with {_catalog_name(current)}")
        for line in diff.lines():
            click.echo(line)
        if not diff:
            click.echo(f"no changes: {target} not written")
            return
        if dry_run:
            click.echo("dry run: nothing written")
            return
        if not yes:
            if not sys.stdin.isatty():
                raise InputError("not written: no terminal to ask on; run again with --yes to write it")
            if not click.confirm(f"write {target}?", default=False):
                click.echo("nothing written")
                sys.exit(1)
        try:
            catalog_refresh.write_catalog(new, target)
        except OSError as exc:
            hint = " (set SS_DATA_DIR to a writable directory)" if target == in_force else ""
            raise click.ClickException(f"cannot write {exc.filename or target}: {exc.strerror or exc}{hint}") from None
        click.echo(f"written: {target} ({len(new)} report types)")
        if target == in_force:
            click.echo("used by every command from now on, and by a running service from its next cycle")


def _catalog_to_replace(target: Path) -> Catalog:
    """The catalog a refresh is compared with: the target file when it holds one, else the one in force."""
    if target.exists():
        try:
            return load_catalog(target)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            click.echo(f"{target} is not a usable catalog ({first_line(exc)}); compared with the one in use", err=True)
    return load_catalog()


def _catalog_name(catalog: Catalog) -> str:
    where = str(catalog.path) if catalog.path else "the shipped catalog"
    return f"{where} ({len(catalog)} types, {catalog.source.get('origin') or 'unknown origin'})"


@click.command()
@click.option("--older-than", "days", type=params.days(1), help="Days to keep [default: RETENTION_DAYS].")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; change nothing.")
@click.option("--batch", type=click.IntRange(1, 1_000_000), help=f"Events per DELETE [default: {DEFAULT_BATCH}].")
@click.option("--ledger-older-than", type=params.days(), help="Ledger days [default: LEDGER_RETENTION_DAYS].")
@click.option("--audit-older-than", type=params.days(), help="Audit days [default: AUDIT_RETENTION_DAYS].")
@report_format_options()
@handle_errors
def prune(
    days: int | None,
    dry_run: bool,
    batch: int | None,
    ledger_older_than: int | None,
    audit_older_than: int | None,
    fmt: str | None,
    as_json: bool,
) -> None:
    """Delete events whose report date is more than --older-than days before today (UTC), in short batches.

    Ingestion goes on meanwhile; whole partitions before the cutoff are dropped. Findings keep their
    history; the ledger and the audit log are kept unless their own retention is set (0 = keep). Each
    prune is recorded in ss_maintenance_log (status shows the latest).
    """
    chosen: dict[str, int] = {}

    def check(settings: Settings) -> None:  # before the database starts
        chosen["days"] = days or settings.retention_days
        chosen["batch"] = batch or settings.retention_batch_rows
        chosen["ledger"] = settings.ledger_retention_days if ledger_older_than is None else ledger_older_than
        chosen["audit"] = settings.audit_retention_days if audit_older_than is None else audit_older_than
        if not chosen["days"]:
            raise InputError(
                "give --older-than DAYS (or set RETENTION_DAYS) (see 'shadowserver-ingestor prune --help')"
            )
        try:
            check_prune(chosen["days"], batch=chosen["batch"], ledger_days=chosen["ledger"])
        except ValueError as exc:
            raise InputError(str(exc)) from None

    with runtime(need_db=True, check=check) as rt:
        try:
            result = prune_events(
                rt.require_db(),
                chosen["days"],
                today=_today(),
                dry_run=dry_run,
                batch=chosen["batch"],
                ledger_days=chosen["ledger"],
                audit_days=chosen["audit"],
                stop=rt.stop,
            )
        except ValueError as exc:
            raise InputError(str(exc)) from None
    if (fmt or "table") == "json" or as_json:
        click.echo(json.dumps(json_value(result.as_dict()), indent=2))
    else:
        render_prune(result, Screen())
    sys.exit(result.exit_code)


COMMANDS = (status, search, new, import_files, types, catalog, prune)
"""Registered on the main group by ``ingestor.cli``."""
