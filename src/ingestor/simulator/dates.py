"""The API's ``date`` syntax (API doc §1.6): a day, an inclusive ``A:B`` range, ``now``, ``-N`` days ago."""

from __future__ import annotations

import re
from datetime import date, timedelta

_ENDPOINT = re.compile(r"^(?:(\d{4}-\d{2}-\d{2})|now|-(\d{1,5}))$")


class DateSyntaxError(ValueError):
    """The ``date`` field is not a day, a range, ``now`` or a relative day."""


def parse_endpoint(text: str, today: date) -> date:
    """One side of a range: ``YYYY-MM-DD``, ``now`` (today, UTC) or ``-N`` (N days before today)."""
    match = _ENDPOINT.match(text.strip())
    if not match:
        raise DateSyntaxError(text)
    if match.group(1):
        try:
            return date.fromisoformat(match.group(1))
        except ValueError as exc:
            raise DateSyntaxError(text) from exc
    if match.group(2):
        return today - timedelta(days=int(match.group(2)))
    return today


def parse_range(value: object, today: date, default: tuple[int, int]) -> tuple[date, date]:
    """Parse a ``date`` field; ``None`` gives ``today - default[0]`` … ``today - default[1]``.

    A reversed range is swapped rather than rejected (the real server's behaviour is not known).
    """
    if value is None:
        return today - timedelta(days=default[0]), today - timedelta(days=default[1])
    if not isinstance(value, str) or not value.strip():
        raise DateSyntaxError(repr(value))
    # "-365:now" splits on the colon; a lone "-2" is a relative day, not a range.
    first, sep, second = value.partition(":")
    start = parse_endpoint(first, today)
    end = parse_endpoint(second, today) if sep else start
    return (start, end) if start <= end else (end, start)
