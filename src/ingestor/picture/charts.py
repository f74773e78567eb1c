# matplotlib types its Axes methods' **kwargs as unknown: strict basedpyright would flag every call.
# pyright: reportUnknownMemberType=false
"""The report's charts, drawn by matplotlib and kept as inline SVG.

matplotlib rather than plotly: the report is mailed and opened offline, so it must carry everything it
shows. matplotlib renders each chart once, at build time, to a static SVG with its text drawn as paths (no
font to load), a few tens of kB per chart and nothing to execute; plotly would need its 3.5 MB JavaScript
bundle inlined in every report and a script-enabled viewer (mail clients and many intranets block
scripts). Rendering is deterministic: fixed ids and no timestamp in the SVG, so the same data gives the
same file.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ingestor.picture.trends import Trends, weekly

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
SHOWN_TYPES = 7
"""Types drawn one by one; the others are summed as "other types"."""

_RC: dict[str, Any] = {
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",  # shipped with matplotlib: the same glyphs on every machine
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def _svg(name: str, draw: Callable[[Figure, Axes], None], *, height: float = 3.2) -> str:
    """Draw a chart and return it as an inline ``<svg>`` element."""
    settings: Any = {**_RC, "svg.hashsalt": f"ssi-{name}"}
    with plt.rc_context(settings):
        figure, axes = plt.subplots(figsize=(9.0, height), layout="constrained")
        try:
            draw(figure, axes)
            out = io.StringIO()
            figure.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
        finally:
            plt.close(figure)
    text = out.getvalue()
    text = text[text.index("<svg") :]  # drop the XML prolog and DOCTYPE: the element goes inline
    # A class and a label for the page (and its tests); the ids of two charts must not meet in one page.
    text = text.replace("<svg ", f'<svg class="chart" data-chart="{name}" role="img" aria-label="{name}" ', 1)
    return (
        re.sub(r'id="([^"]+)"', lambda m: f'id="{name}-{m.group(1)}"', text)
        .replace("url(#", f"url(#{name}-")
        .replace('xlink:href="#', f'xlink:href="#{name}-')
    )


def _x(days: Sequence[date]) -> list[float]:
    """Days as numbers of days (proleptic ordinals): even spacing, gaps included."""
    return [float(day.toordinal()) for day in days]


def _dates(axes: Axes, days: Sequence[date]) -> None:
    """Ticks at about eight evenly spaced days, labelled month-day."""
    if not days:
        return
    step = max(1, len(days) // 8)
    ticks = list(days[::step])
    axes.set_xticks(_x(ticks), [day.strftime("%m-%d") for day in ticks])
    axes.set_xlim(_x(days)[0] - 0.5, _x(days)[-1] + 0.5)


def _empty(axes: Axes, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, color="#777777")
    axes.set_xticks([])
    axes.set_yticks([])


def open_findings(trends: Trends) -> str:
    """Open findings at the end of each day, per type (the busiest ones; the rest summed)."""

    def draw(_: Figure, axes: Axes) -> None:
        if not trends.types:
            _empty(axes, "no findings in this window")
            return
        for colour, trend in zip(COLOURS, trends.types[:SHOWN_TYPES], strict=False):
            axes.plot(_x(trends.days), trend.open, label=trend.report_type, color=colour, linewidth=1.6)
        rest = trends.types[SHOWN_TYPES:]
        if rest:
            other = [sum(values) for values in zip(*(t.open for t in rest), strict=True)]
            axes.plot(_x(trends.days), other, label=f"{len(rest)} other types", color=COLOURS[-1], linestyle="--")
        axes.set_ylabel("open findings")
        axes.set_ylim(bottom=0)
        axes.legend(loc="upper left", fontsize=8, ncols=2, frameon=False)
        _dates(axes, trends.days)

    return _svg("open-findings", draw)


def new_and_resolved(trends: Trends) -> str:
    """New (and reopened) against resolved findings per week, every type."""

    def draw(_: Figure, axes: Axes) -> None:
        new = weekly([a + b for a, b in zip(trends.totals("new"), trends.totals("reopened"), strict=True)])
        resolved = weekly(trends.totals("resolved"))
        if not any(new) and not any(resolved):
            _empty(axes, "no finding opened or resolved in this window")
            return
        ends = [trends.days[min(len(trends.days) - 1, end)] for end in _week_ends(len(trends.days))]
        labels = [day.strftime("%m-%d") for day in ends]
        positions = list(range(len(labels)))
        axes.bar([p - 0.2 for p in positions], new, width=0.4, label="new or reopened", color=COLOURS[3])
        axes.bar([p + 0.2 for p in positions], resolved, width=0.4, label="resolved", color=COLOURS[2])
        axes.set_xticks(positions, labels)
        axes.set_xlabel("week ending")
        axes.set_ylabel("findings")
        axes.legend(loc="upper left", fontsize=8, frameon=False)

    return _svg("new-and-resolved", draw)


def _week_ends(days: int) -> list[int]:
    start = days % 7
    ends = [start - 1] if start else []
    return ends + list(range(start + 6, days, 7))


def top_bars(name: str, labels: Sequence[str], values: Sequence[int], xlabel: str, colour: str) -> str:
    """A horizontal bar chart, the largest on top."""

    def draw(_: Figure, axes: Axes) -> None:
        if not values:
            _empty(axes, "nothing in this window")
            return
        positions = list(range(len(values)))
        axes.barh(positions, list(values), color=colour)
        axes.set_yticks(positions, list(labels))
        axes.invert_yaxis()
        axes.set_xlabel(xlabel)
        axes.grid(axis="y", visible=False)

    return _svg(name, draw, height=max(2.0, 0.28 * len(values) + 0.9))


def time_to_fix(days: Sequence[int]) -> str:
    """How many days resolved findings took, from first seen to resolved."""

    def draw(_: Figure, axes: Axes) -> None:
        if not days:
            _empty(axes, "no finding resolved in this window")
            return
        top = max(days)
        bins = list(range(0, top + 2)) if top <= 60 else 40
        axes.hist(list(days), bins=bins, color=COLOURS[0], edgecolor="white")
        axes.set_xlabel("days from first seen to resolved")
        axes.set_ylabel("findings")

    return _svg("time-to-fix", draw)


def feed_health(days: Sequence[date], files: Sequence[int], rows: Sequence[int]) -> str:
    """Files per report date (bars; red ticks mark days with none) and rows read (line)."""

    def draw(_: Figure, axes: Axes) -> None:
        axes.bar(_x(days), list(files), color=COLOURS[0], width=0.8, label="files")
        silent = [day for day, count in zip(days, files, strict=True) if count == 0]
        if silent:
            axes.plot(_x(silent), [0] * len(silent), "v", color=COLOURS[3], markersize=7, label="no file")
        axes.set_ylabel("files")
        right: Any = axes.twinx()
        right.plot(_x(days), list(rows), color=COLOURS[1], linewidth=1.4, label="rows read")
        right.set_ylabel("rows read")
        right.set_ylim(bottom=0)
        right.grid(False)
        handles = axes.get_legend_handles_labels()
        more = right.get_legend_handles_labels()
        axes.legend(handles[0] + more[0], handles[1] + more[1], loc="upper left", fontsize=8, frameon=False)
        _dates(axes, days)

    return _svg("feed-health", draw)
