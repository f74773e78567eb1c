"""Human views of ``status``, ``types`` and ``prune``: tables with readable numbers.

On a terminal they are coloured rich tables; piped, plain aligned text without box drawing or trailing
spaces (:class:`~ingestor.ops.screen.Screen`). Scripts use ``--format json`` instead. Times are UTC,
``2026-12-01 08:38:38Z``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ingestor.ops.formats import human_bytes, human_count, human_seconds
from ingestor.ops.retention import PruneResult
from ingestor.ops.screen import Screen
from ingestor.terminal import iso_time

PRUNE_DATES_SHOWN = 20

_STATUS_COLOURS = {"success": "green", "loaded": "green", "running": "yellow", "partial": "yellow"}


def _status(status: str | None) -> str:
    colour = _STATUS_COLOURS.get(status or "", "red")
    return f"[{colour}]{status}[/]"


def _when(value: datetime | None) -> str:
    return iso_time(value)


def render_status(data: dict[str, Any], screen: Screen) -> None:
    """The status report as a summary line and tables."""
    db = data["database"]
    first, last = db["first_report_date"], db["last_report_date"]
    screen.print(
        f"[bold]database[/] {human_bytes(db['size_bytes'])} (events {human_bytes(db['events_bytes'])}, "
        f"~{human_count(db['events_estimate'])} events, ~{human_count(db['findings_estimate'])} findings"
        + (f", report dates {first} to {last}" if first else ", no events")
        + f"); schema {db['schema_version']}; last successful ingestion cycle {_when(db['last_success'])}"
    )
    holder = db.get("ingestion_lock")
    screen.print(f"ingesting now: {holder}" if holder else "ingesting now: no")
    runs = screen.table(
        "latest runs",
        "run",
        "kind",
        "status",
        "started",
        "took",
        "files new/loaded/failed",
        "inserted",
        "duplicate",
        "rejected",
        "note",
        right=("run", "took", "inserted", "duplicate", "rejected"),
    )
    for run in data["runs"]:
        note = run["error"] or ""
        runs.add_row(
            str(run["id"]),
            run["kind"] or "-",
            _status(run["status"]),
            _when(run["started"]),
            human_seconds(run["seconds"]),
            f"{run['files_new']}/{run['files_loaded']}/{run['files_failed']}",
            human_count(run["rows_inserted"]),
            human_count(run["rows_duplicate"]),
            human_count(run["rows_rejected"]),
            note,
        )
    screen.print(runs if data["runs"] else "no runs recorded yet")
    if data.get("maintenance"):
        prunes = screen.table(
            "latest prunes",
            "id",
            "status",
            "started",
            "took",
            "cutoff",
            "events deleted",
            "note",
            right=("id", "took", "events deleted"),
        )
        for item in data["maintenance"]:
            prunes.add_row(
                str(item["id"]),
                _status(item["status"]),
                _when(item["started_at"]),
                human_seconds(item["seconds"]),
                str(item["cutoff"] or "-"),
                human_count(item["events_deleted"]),
                item["error"] or "",
            )
        screen.print(prunes)
    if data["failed_files"]:
        failed = screen.table(
            "files that failed", "file", "type", "date", "status", "attempts", "error", right=("attempts",)
        )
        for item in data["failed_files"]:
            failed.add_row(
                item["file_name"] or "-",
                item["report_type"],
                str(item["report_date"]),
                _status(item["status"]),
                str(item["attempts"]),
                item["error"] or "",
            )
        screen.print(failed)
    if data["unknown_types"]:
        unknown = screen.table(
            "report types not in the catalog (loaded with the generic mapping; try `catalog refresh`)",
            "type",
            "files",
            "rows inserted",
            "first date",
            "last date",
            right=("files", "rows inserted"),
        )
        for item in data["unknown_types"]:
            unknown.add_row(
                item["report_type"],
                human_count(item["files"]),
                human_count(item["rows_inserted"]),
                str(item["first_date"]),
                str(item["last_date"]),
            )
        screen.print(unknown)
    if "feed" in data:
        _render_feed(data["feed"], screen)
    _render_rows_by_type(data["rows_by_type"], screen)


def _render_feed(section: dict[str, Any], screen: Screen) -> None:
    """Alarms on the feed itself (docs/findings.md), and the columns that changed per type."""
    for alarm in section["alarms"]:
        screen.print(f"[yellow]feed alarm[/] ({alarm['kind']}): {alarm['message']}")
    current = [item for item in section["columns"] if item["current"]]
    if current:
        table = screen.table(
            "columns new to or vanished from the published schema (as in each type's latest file)",
            "type",
            "change",
            "column",
            "first seen",
            "last seen",
            "files",
            right=("files",),
        )
        for item in current:
            table.add_row(
                item["report_type"],
                item["change"],
                item["column_name"],
                str(item["first_seen"]),
                str(item["last_seen"]),
                human_count(item["files"]),
            )
        screen.print(table)


def _render_rows_by_type(pivot: dict[str, Any], screen: Screen) -> None:
    days = pivot["days"]
    if not pivot["types"]:
        screen.print(f"no events with report dates {pivot['since']} to {pivot['until']}")
        return
    labels = [day.strftime("%m-%d") for day in days]
    table = screen.table(
        f"events per report type and report date ({pivot['since']} to {pivot['until']})",
        "type",
        *labels,
        "total",
        right=(*labels, "total"),
    )
    for entry in pivot["types"]:
        cells = [human_count(entry["by_date"].get(day.isoformat())) for day in days]
        table.add_row(entry["report_type"], *cells, human_count(entry["total"]))
    screen.print(table)


def render_types(data: dict[str, Any], screen: Screen, *, seen_only: bool = False) -> None:
    """The report-type inventory as one table, then what the API said."""
    api = data["api"]
    columns = ["type", "family", "severity", "events", "last date", "files", "note"]
    title = f"report types (catalog: {data['catalog']['types']} types, {data['catalog'].get('file') or 'shipped'})"
    table = screen.table(title, *columns, right=("events", "files"))
    shown = 0
    for item in data["types"]:
        if seen_only and not (item["events"] or item["files"]):
            continue
        notes: list[str] = []
        if not item["in_catalog"]:
            notes.append("[yellow]not in the catalog[/]")
        if api is not None:
            notes.append("offered" if item["offered"] else "[dim]not offered[/]")
        table.add_row(
            item["type"],
            item["family"] or "-",
            item["default_severity"] or "-",
            human_count(item["events"]) if item["events"] else "",
            str(item["last_date"] or ""),
            human_count(item["files"]) if item["files"] else "",
            ", ".join(notes),
        )
        shown += 1
    screen.print(table if shown else "no report type seen in the database yet")
    if data["unknown_types"]:
        screen.print(f"[yellow]types seen but not in the catalog:[/] {', '.join(data['unknown_types'])}")
    if api is not None:
        screen.print(f"subscribed (reports/subscribed): {', '.join(api['subscribed']) or 'none'}")
        screen.print(f"offered (reports/types): {len(api['offered'])} types")


def render_prune(result: PruneResult, screen: Screen) -> None:
    """What a prune removed, or would remove."""
    verb = "would delete" if result.dry_run else "deleted"
    days = sorted(result.events_by_date)
    span = f" of {len(days)} report dates ({days[0]} to {days[-1]})" if days else ""
    if days:
        table = screen.table(f"events before {result.cutoff}", "report date", "events", right=("events",))
        for day in days[:PRUNE_DATES_SHOWN]:
            table.add_row(str(day), human_count(result.events_by_date[day]))
        if len(days) > PRUNE_DATES_SHOWN:
            table.add_row(f"... {len(days) - PRUNE_DATES_SHOWN} more dates", "")
        screen.print(table)
    line = (
        f"{_status(result.status) if not result.dry_run else '[bold]dry run[/]'}: {verb} "
        f"{human_count(result.events)} events before {result.cutoff}{span}, "
        f"{human_count(result.reports)} report counters"
    )
    if result.ledger_cutoff:
        line += f", {human_count(result.ledger_files)} ledger entries before {result.ledger_cutoff}"
    if result.audit_before:
        line += f", {human_count(result.audit_runs)} audit rows before {_when(result.audit_before)}"
    if result.dry_run:
        line += "; nothing was changed"
    else:
        line += (
            f" in {human_seconds(result.seconds)} ({result.batches} batches, longest {result.max_batch_seconds:.2f} s;"
            f" run {result.run_id})"
        )
    screen.print(line)
    if result.error:
        screen.print(f"[red]error:[/] {result.error}")
