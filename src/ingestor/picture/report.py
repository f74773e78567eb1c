"""``report --html``: one self-contained HTML file for people who read mail, not databases.

Everything it shows is inside the file: the charts are inline SVG drawn when it is built (``charts.py``),
the style sheet is inline, there is no script, no font, no image or link to load: it opens offline, in a
mail client, and sends no request anywhere (tests/integration/test_report_browser.py checks that in
Chromium). The numbers come from the rollup, the findings, the ledger and the audit log (never
``ss_events``), so a report over months costs a few small queries.
"""

from __future__ import annotations

import html
import statistics
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ingestor import __version__
from ingestor.config import Settings
from ingestor.picture import QUERIES, charts, feed
from ingestor.picture.trends import Trends, collect_trends

TOP = 12


@dataclass
class ReportData:
    """What the report shows."""

    since: date
    until: date
    organisation: str | None
    trends: Trends
    top_asns: list[dict[str, Any]]
    fix_days: list[int]
    feed_days: list[date]
    feed_files: list[int]
    feed_rows: list[int]
    alarms: list[feed.Alarm] = field(default_factory=list[feed.Alarm])
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    @property
    def silent_days(self) -> list[date]:
        return [day for day, files in zip(self.feed_days, self.feed_files, strict=True) if not files]


def collect_report(
    conn: psycopg.Connection[Any],
    settings: Settings,
    since: date,
    until: date,
    *,
    org_id: int | None = None,
    organisation: str | None = None,
    now: datetime | None = None,
) -> ReportData:
    """Read everything the report shows for the report dates ``since`` to ``until``."""
    trends = collect_trends(conn, since, until, org_id=org_id)
    params = {"since": since, "org_id": org_id, "limit": TOP}
    with conn.cursor(row_factory=dict_row) as cursor:
        asns = cursor.execute(QUERIES["top_asns"], params).fetchall()
        fixes = cursor.execute(QUERIES["time_to_fix"], params).fetchall()
        ledger = {row["report_date"]: row for row in cursor.execute(QUERIES["feed_days"], params)}
    fix_days = [int(row["days"]) for row in fixes if row["days"] is not None for _ in range(int(row["findings"]))]
    days = trends.days
    return ReportData(
        since,
        until,
        organisation,
        trends,
        asns,
        fix_days,
        days,
        [int(ledger[day]["files"]) if day in ledger else 0 for day in days],
        [int(ledger[day]["rows_read"]) if day in ledger else 0 for day in days],
        feed.feed_alarms(conn, settings, now or datetime.now(UTC)),
    )


def render_html(data: ReportData) -> str:
    """The report as one HTML document."""
    trends = data.trends
    types = trends.types
    new = sum(trends.totals("new"))
    resolved = sum(trends.totals("resolved"))
    reopened = sum(trends.totals("reopened"))
    open_now = sum(t.open_now for t in types)
    median = f"{statistics.median(data.fix_days):g} days" if data.fix_days else "-"
    scope = f" for {data.organisation}" if data.organisation else ""
    by_open = sorted(types, key=lambda t: (-t.open_now, t.report_type))[:TOP]
    cards = [
        ("open findings now", f"{open_now:,}"),
        ("new in the window", f"{new:,}"),
        ("resolved", f"{resolved:,}"),
        ("reopened", f"{reopened:,}"),
        ("median time to fix", median),
        ("report types", f"{len(types):,}"),
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Shadowserver findings{_e(scope)}, {data.since} to {data.until}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<header><h1>Shadowserver findings{_e(scope)}</h1>",
        f"<p>Report dates {data.since} to {data.until} ({len(trends.days)} days). Generated"
        f" {data.generated_at:%Y-%m-%d %H:%M} UTC by shadowserver-ingestor {_e(__version__)}.</p></header>",
        '<section class="cards">'
        + "".join(f'<div class="card"><div class="value">{v}</div><div>{_e(k)}</div></div>' for k, v in cards)
        + "</section>",
    ]
    if data.alarms:
        parts.append('<section class="alarms"><h2>Alarms on the feed</h2><ul>')
        parts += [f"<li>{_e(alarm.message)}</li>" for alarm in data.alarms]
        parts.append("</ul></section>")
    parts += [
        _section(
            "Open findings over time", "At the end of each report day, per report type.", charts.open_findings(trends)
        ),
        _section(
            "New and resolved per week",
            "Findings first seen or seen again after a resolution, against findings resolved.",
            charts.new_and_resolved(trends),
        ),
        _section(
            "Top report types",
            "Open findings at the end of the window.",
            charts.top_bars(
                "top-types", [t.report_type for t in by_open], [t.open_now for t in by_open], "open findings", "#d62728"
            ),
        ),
        _section(
            "Top ASNs",
            "Subjects (hosts seen by a report) summed over the window's days.",
            charts.top_bars(
                "top-asns",
                [f"AS{row['asn']}" if row["asn"] else "unknown" for row in data.top_asns],
                [int(row["subjects"]) for row in data.top_asns],
                "subject-days",
                "#1f77b4",
            ),
        ),
        _section(
            "Time to fix",
            "Findings resolved in the window: days from first seen to resolved (resolved = absent from"
            " the type's full reports for the configured number of report days).",
            charts.time_to_fix(data.fix_days),
        ),
        _section(
            "The feed",
            "Files listed per report date (any outcome) and rows read; red marks are days with no file."
            + (
                f" Days with nothing: {', '.join(str(d) for d in data.silent_days)}."
                if data.silent_days
                else " No day without a file."
            ),
            charts.feed_health(data.feed_days, data.feed_files, data.feed_rows),
        ),
        _type_table(trends),
        "<footer>Numbers from ss_rollup_daily, ss_findings, the ledger and the audit log. "
        "This file loads nothing: no script, font or image from anywhere.</footer>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_report(path: Path, document: str) -> None:
    """Write the document whole (a temporary file renamed over the target)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(document, encoding="utf-8")
    temporary.replace(path)


def default_since(until: date, days: int) -> date:
    return until - timedelta(days=days - 1)


def _section(title: str, note: str, chart: str) -> str:
    return f'<section><h2>{_e(title)}</h2><p class="note">{_e(note)}</p>{chart}</section>'


def _type_table(trends: Trends) -> str:
    rows = "".join(
        f"<tr><td>{_e(t.report_type)}</td><td>{t.open_now:,}</td><td>{sum(t.new):,}</td><td>{sum(t.resolved):,}</td>"
        f"<td>{sum(t.reopened):,}</td><td>{max(t.subjects, default=0):,}</td><td>{sum(t.rows):,}</td></tr>"
        for t in trends.types
    )
    return (
        "<section><h2>Per report type</h2><table><thead><tr><th>type</th><th>open now</th><th>new</th>"
        "<th>resolved</th><th>reopened</th><th>most subjects a day</th><th>rows</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def _e(text: str) -> str:
    return html.escape(text, quote=True)


STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: #1d2329; max-width: 1000px; margin: 2em auto; padding: 0 1em; background: #fff; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; margin: 1.6em 0 0.3em; }
header p, .note, footer { color: #5b6670; }
.cards { display: flex; flex-wrap: wrap; gap: 0.8em; margin: 1.2em 0; }
.card { flex: 1 1 140px; border: 1px solid #d9dee3; border-radius: 6px; padding: 0.7em 0.9em; }
.card .value { font-size: 1.6em; font-weight: 600; }
.alarms { border-left: 4px solid #d62728; background: #fdf1f1; padding: 0.3em 1em; }
svg.chart { width: 100%; height: auto; display: block; }
table { border-collapse: collapse; width: 100%; font-size: 0.92em; }
th, td { border-bottom: 1px solid #e3e7eb; padding: 0.3em 0.5em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
footer { margin-top: 2.5em; font-size: 0.85em; }
"""
