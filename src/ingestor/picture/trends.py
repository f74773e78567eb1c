"""The rollup over a window, per report type: open findings, subjects and rows per day, transitions.

Everything comes from ``ss_rollup_daily`` (never ``ss_events``): open findings at the end of a day are all
the transitions of the type up to that day (new + reopened - resolved), which the rollup holds whole
through prunes. ``trends`` prints it as sparklines; ``report --html`` draws it (``charts.py``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ingestor.ops.screen import Screen
from ingestor.picture import QUERIES

BARS = " ▁▂▃▄▅▆▇█"


@dataclass
class TypeTrend:
    """One report type's days in the window (one value per day, the window's days in order)."""

    report_type: str
    open: list[int]
    subjects: list[int]
    rows: list[int]
    new: list[int]
    resolved: list[int]
    reopened: list[int]

    @property
    def open_now(self) -> int:
        return self.open[-1] if self.open else 0


@dataclass
class Trends:
    """The window and its types, the busiest (most open findings at the end) first."""

    since: date
    until: date
    days: list[date]
    types: list[TypeTrend] = field(default_factory=list[TypeTrend])

    def totals(self, name: str) -> list[int]:
        """A measure summed over every type, per day."""
        values = [0] * len(self.days)
        for trend in self.types:
            for index, value in enumerate(getattr(trend, name)):
                values[index] += value
        return values


def collect_trends(
    conn: psycopg.Connection[Any],
    since: date,
    until: date,
    *,
    org_id: int | None = None,
    types: tuple[str, ...] = (),
) -> Trends:
    """The rollup from ``since`` to ``until`` (inclusive) per type; ``types`` limits them."""
    days = [since + timedelta(days=offset) for offset in range((until - since).days + 1)]
    index = {day: position for position, day in enumerate(days)}
    params = {"since": since, "org_id": org_id}
    with conn.cursor(row_factory=dict_row) as cursor:
        before = {r["report_type"]: int(r["open_findings"]) for r in cursor.execute(QUERIES["open_before"], params)}
        daily = cursor.execute(QUERIES["rollup_daily"], params).fetchall()
    measures: dict[str, dict[str, list[int]]] = defaultdict(
        lambda: {name: [0] * len(days) for name in ("rows", "subjects", "new", "resolved", "reopened")}
    )
    for name in before:
        measures[name]
    for row in daily:
        position = index.get(row["report_date"])
        if position is None:
            continue
        entry = measures[row["report_type"]]
        entry["rows"][position] += int(row["rows"])
        entry["subjects"][position] += int(row["subjects"])
        entry["new"][position] += int(row["new_findings"])
        entry["resolved"][position] += int(row["resolved_findings"])
        entry["reopened"][position] += int(row["reopened_findings"])
    trends = Trends(since, until, days)
    for report_type, entry in measures.items():
        if types and report_type not in types:
            continue
        running, open_days = before.get(report_type, 0), list[int]()
        for new, reopened, resolved in zip(entry["new"], entry["reopened"], entry["resolved"], strict=True):
            running += new + reopened - resolved
            open_days.append(running)
        trend = TypeTrend(
            report_type, open_days, entry["subjects"], entry["rows"], entry["new"], entry["resolved"], entry["reopened"]
        )
        if any(trend.open) or any(trend.rows):
            trends.types.append(trend)
    trends.types.sort(key=lambda t: (-t.open_now, -sum(t.rows), t.report_type))
    return trends


def _series(values: list[int], screen: Screen) -> str:
    """A sparkline on a terminal; piped, plain numbers instead of block characters: the value on the last
    day of each week (the window's weeks end on its last day)."""
    if not screen.plain:
        return f"[cyan]{sparkline(values)}[/]"
    ends = [values[index] for index in range(len(values) - 1, -1, -7)][::-1]
    return " ".join(f"{value:,}" for value in ends)


def sparkline(values: list[int]) -> str:
    """One character per value, its height relative to the largest (a blank for 0)."""
    top = max(values, default=0)
    if top <= 0:
        return " " * len(values)
    return "".join(BARS[0 if v <= 0 else max(1, round(v / top * (len(BARS) - 1)))] for v in values)


def weekly(values: list[int], width: int = 7) -> list[int]:
    """Sums of consecutive ``width`` values, the last group ending with the last value."""
    start = len(values) % width
    groups = [sum(values[:start])] if start else []
    groups += [sum(values[i : i + width]) for i in range(start, len(values), width)]
    return groups


def trends_json(trends: Trends) -> dict[str, Any]:
    """What ``trends --format json`` prints: the window, its days and each type's values per day."""
    return {
        "since": trends.since,
        "until": trends.until,
        "days": trends.days,
        "types": [{**asdict(trend), "open_now": trend.open_now} for trend in trends.types],
    }


def render_trends(trends: Trends, screen: Screen) -> None:
    """A table: per type, open findings now and over the window, subjects per day, new / resolved / reopened."""
    if not trends.types:
        screen.print(f"nothing in the rollup from {trends.since} to {trends.until}")
        return
    table = screen.table(
        f"findings and subjects per report type, {trends.since} to {trends.until}"
        + (" (each week's last day)" if screen.plain else " (one character a day)"),
        "type",
        "open",
        "open findings",
        "subjects a day",
        "new",
        "resolved",
        "reopened",
        right=("open", "new", "resolved", "reopened"),
        fold=False,
    )
    for column in table.columns[2:4]:
        column.no_wrap = True
    for trend in trends.types:
        table.add_row(
            trend.report_type,
            f"{trend.open_now:,}",
            _series(trend.open, screen),
            _series(trend.subjects, screen),
            f"{sum(trend.new):,}",
            f"{sum(trend.resolved):,}",
            f"{sum(trend.reopened):,}",
        )
    screen.print(table)
    new, resolved = weekly(trends.totals("new")), weekly(trends.totals("resolved"))
    screen.print(
        "new per week:      "
        + " ".join(f"{n:>6,}" for n in new)
        + "\nresolved per week: "
        + " ".join(f"{n:>6,}" for n in resolved)
    )
