"""The one place where psycopg's errors become ours (as procrastinate's ``wrap_exceptions()`` does).

What an error means for a run is decided by its SQLSTATE, not by psycopg's class: ``OperationalError``
covers a lost connection as well as a deadlock, a lock or statement timeout, a serialization failure and a
full disk, and only the first ends a run.

    psycopg.Error
    ├── no SQLSTATE, class 08, 57P01-57P03, 53300 ─► DatabaseUnavailableError   the run ends; retried next cycle
    ├── 42501 insufficient privilege            ─► DatabasePermissionError    the run ends; an operator must act
    ├── 25006 read-only transaction             ─► DatabasePermissionError    (a replica, or a read-only role)
    ├── 57014 while a stop was requested        ─► StopRequested              the file is abandoned cleanly
    └── anything else                           ─► DatabaseQueryError         the file fails, the next one goes on
        ├── 55P03, 57014                        ─► DatabaseTimeoutError        lock_timeout, statement_timeout
        ├── 40P01, 40001                        ─► DatabaseConflictError       deadlock, serialization failure
        ├── class 22, 23                        ─► DatabaseDataError           a value or a constraint
        └── class 53, 54                        ─► DatabaseResourceError       disk full, out of memory, limits

The original error is always chained (``raise ... from exc``); messages are one redacted line.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from contextlib import contextmanager

import psycopg

from ingestor.errors import (
    DatabaseConflictError,
    DatabaseDataError,
    DatabaseError,
    DatabasePermissionError,
    DatabaseQueryError,
    DatabaseResourceError,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
    IngestorError,
    StopRequested,
)
from ingestor.redaction import first_line

_UNAVAILABLE = frozenset({"57P01", "57P02", "57P03", "53300"})
"""admin_shutdown, crash_shutdown, cannot_connect_now (starting up, shutting down, recovering), too many
connections: the server is (for now) not there."""


def translate(exc: psycopg.Error, *, stop: threading.Event | None = None, where: str = "") -> IngestorError:
    """Our error for a psycopg error (see the module docstring)."""
    state = exc.sqlstate or ""
    prefix = f"{where}: " if where else ""
    message = prefix + first_line(exc)
    if not state or state.startswith("08") or state in _UNAVAILABLE:
        return DatabaseUnavailableError(f"{prefix}PostgreSQL is unavailable: {first_line(exc)}")
    if state in ("42501", "25006"):
        return DatabasePermissionError(message)
    if state == "57014" and stop is not None and stop.is_set():
        return StopRequested("stop requested: the running statement was cancelled")
    if state in ("55P03", "57014"):
        return DatabaseTimeoutError(message)
    if state in ("40P01", "40001"):
        return DatabaseConflictError(message)
    if state.startswith(("22", "23")):
        return DatabaseDataError(message)
    if state.startswith(("53", "54")):
        return DatabaseResourceError(message)
    return DatabaseQueryError(message)


@contextmanager
def wrap_exceptions(*, stop: threading.Event | None = None, where: str = "") -> Generator[None, None, None]:
    """Re-raise psycopg errors inside the block as ours, chained to the original."""
    try:
        yield
    except psycopg.Error as exc:
        raise translate(exc, stop=stop, where=where) from exc


def is_fatal(exc: DatabaseError) -> bool:
    """Whether a database error ends a run (the server is gone, or the role cannot do its work), as opposed
    to failing the one file that met it."""
    return not isinstance(exc, DatabaseQueryError)
