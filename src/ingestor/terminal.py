"""The terminal: one rich Console on stderr that log lines and progress displays share, and how chatty
the logs are there.

Log lines and a live progress display must write through the same Console: rich then prints each log
line above the live region instead of into it. On a terminal a command's own output (its progress, its
one line per file, its summary) is what a person reads, so log records below WARNING are shown only with
``-v`` (``-vv``: DEBUG), or when ``LOG_LEVEL`` is set explicitly; the service (``run``), whose log is its
output, and every non-terminal stream keep ``LOG_LEVEL``.
"""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime
from typing import IO, Any

from rich.console import Console

_lock = threading.Lock()
_console: Console | None = None
_verbosity = 0
_file_details = threading.Event()
"""Set while a live display shows one line per file: the records logged inside a file are then details."""


def stderr_console() -> Console:
    """The process's one Console on stderr (created on first use)."""
    global _console
    with _lock:
        if _console is None:
            _console = Console(stderr=True, highlight=False)
        return _console


def reset_console() -> None:
    """Forget the Console (tests that swap ``sys.stderr`` need a new one)."""
    global _console
    with _lock:
        _console = None


def is_tty(stream: IO[Any] | None) -> bool:
    """Whether ``stream`` is a terminal (False for anything that is not a real file)."""
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):
        return False


def stdout_is_terminal() -> bool:
    return is_tty(sys.stdout)


def stderr_is_terminal() -> bool:
    return is_tty(sys.stderr)


def set_verbosity(count: int) -> None:
    """``-v`` given ``count`` times (the highest count seen wins: ``-v`` may follow the group and a command)."""
    global _verbosity
    _verbosity = max(_verbosity, count)


def verbosity() -> int:
    return _verbosity


def reset_verbosity() -> None:
    global _verbosity
    _verbosity = 0


def show_file_lines(active: bool) -> None:
    """Say whether a live display now shows one line per file (see :func:`file_details_hidden`)."""
    if active:
        _file_details.set()
    else:
        _file_details.clear()


def file_details_hidden() -> bool:
    """True while a live display's one line per file stands for the records logged inside each file."""
    return _file_details.is_set() and _verbosity == 0


def iso_time(moment: datetime | None, empty: str = "-") -> str:
    """``2026-12-01 08:38:38Z``: ISO 8601 in UTC, to the second (naive times are taken as UTC)."""
    if moment is None:
        return empty
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")
