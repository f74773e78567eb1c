"""Command-line types for numbers, bounded on both sides.

An unbounded ``--older-than 99999999999`` overflowed a date, ``--limit 99999999999999999999`` a BIGINT,
``--latency inf`` a sleep: every number a command takes has a maximum here, and floats must be finite,
so that bad input is one line and exit code 2, never a traceback or a database error.
"""

from __future__ import annotations

import math
from typing import Any

import click

MAX_DAYS = 36_500
"""A century of days: retention and similar windows."""

MAX_BACKFILL_DAYS = 3_650
"""As ``BACKFILL_DAYS`` and ``SS_LOOKBACK_DAYS``: ten years of reports."""

MAX_ROWS = 1_000_000_000_000
"""Rows shown or generated: far beyond any report, well inside a BIGINT."""

MAX_SECONDS = 86_400.0


def days(minimum: int = 0, maximum: int = MAX_DAYS) -> click.IntRange:
    """A number of days."""
    return click.IntRange(minimum, maximum)


class FiniteFloat(click.FloatRange):
    """A float within bounds that is neither ``nan`` nor infinite (``FloatRange`` lets ``nan`` through)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def seconds(minimum: float = 0.0, maximum: float = MAX_SECONDS, *, min_open: bool = False) -> FiniteFloat:
    """A duration in seconds."""
    return FiniteFloat(minimum, maximum, min_open=min_open)


def fraction(*, min_open: bool = False) -> FiniteFloat:
    """A probability or share, 0 to 1."""
    return FiniteFloat(0.0, 1.0, min_open=min_open)
