"""Logging: human-readable on a terminal, plain lines in files and pipes, JSON lines on request.

Times are UTC, ISO 8601 (``2026-12-01 08:38:38Z``; JSON: with milliseconds). On a terminal, lines go
through the process's one Console (:mod:`ingestor.terminal`), so that they print above a progress bar.
Every record carries the current run id and, inside a file, its report type and date (context
variables set by :func:`log_context`), and goes through the redaction filter, so no secret or download
id can reach a log line whatever the caller formats into it.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Generator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from rich.console import Console
from rich.text import Text

from ingestor import terminal
from ingestor.redaction import redact

_RUN_ID: ContextVar[int | None] = ContextVar("run_id", default=None)
_REPORT: ContextVar[tuple[str, str] | None] = ContextVar("report", default=None)

TIME_FORMAT = "%Y-%m-%d %H:%M:%SZ"


@contextmanager
def log_context(
    *, run_id: int | None = None, report_type: str | None = None, report_date: str | None = None
) -> Generator[None, None, None]:
    """Attach a run id and/or a report (type, date) to every record logged inside the block."""
    run_token = _RUN_ID.set(run_id) if run_id is not None else None
    report_token = _REPORT.set((report_type, report_date or "")) if report_type is not None else None
    try:
        yield
    finally:
        if report_token is not None:
            _REPORT.reset(report_token)
        if run_token is not None:
            _RUN_ID.reset(run_token)


class ContextFilter(logging.Filter):
    """Adds ``run_id``, ``report_type``, ``report_date`` and a text ``context`` prefix; redacts the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        run_id = _RUN_ID.get()
        report = _REPORT.get()
        record.run_id = run_id
        record.report_type, record.report_date = report if report else (None, None)
        parts: list[str] = []
        if run_id is not None:
            parts.append(f"run={run_id}")
        if report:
            parts.append(f"{report[0]}/{report[1]}")
        record.context = f"[{' '.join(parts)}] " if parts else ""
        message = redact(record.getMessage())
        record.msg, record.args = message, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class TextFormatter(logging.Formatter):
    """``2026-12-01 08:38:38Z [INFO] ingestor.files: [run=3 scan_ssl/2026-11-30] message``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s [%(levelname)s] %(name)s: %(context)s%(message)s", TIME_FORMAT)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime(datefmt or TIME_FORMAT, time.gmtime(record.created))


_LEVEL_STYLES = {"DEBUG": "dim", "INFO": "cyan", "WARNING": "yellow", "ERROR": "bold red", "CRITICAL": "bold red"}


class ConsoleHandler(logging.Handler):
    """Log lines on a terminal: ``2026-12-01 08:38:38Z WARNING message``, printed through a rich Console
    (above its live display, if one runs). While a live display shows one line per file, the records
    logged inside a file are its details: shown only with ``-v``."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if getattr(record, "report_type", None) is not None and terminal.file_details_hidden():
                return
            stamp = time.strftime(TIME_FORMAT, time.gmtime(record.created))
            line = Text.assemble(
                (stamp, "dim"),
                " ",
                (f"{record.levelname:<7}", _LEVEL_STYLES.get(record.levelname, "")),
                " ",
                getattr(record, "context", ""),
                record.getMessage(),
            )
            if record.exc_text:
                line.append("\n" + record.exc_text, "dim")
            self.console.print(line)
        except Exception:
            self.handleError(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for Loki, ELK and friends."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("run_id", "report_type", "report_date"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(
    level: str = "INFO", fmt: str = "auto", stream: IO[str] | None = None, *, terminal_level: str | None = None
) -> None:
    """Install one handler on the ``ingestor`` logger tree (idempotent).

    ``terminal_level``, when given, is the level shown on a terminal (``auto`` format) instead of ``level``.
    """
    out: IO[str] = sys.stderr if stream is None else stream
    handler: logging.Handler
    if fmt == "json":
        handler = logging.StreamHandler(out)
        handler.setFormatter(JsonFormatter())
    elif fmt == "auto" and terminal.is_tty(out):
        console = terminal.stderr_console() if out is sys.stderr else Console(file=out, highlight=False)
        handler = ConsoleHandler(console)
        level = terminal_level or level
    else:
        handler = logging.StreamHandler(out)
        handler.setFormatter(TextFormatter())
    handler.addFilter(ContextFilter())
    for name, logger_level in (("ingestor", level), ("psycopg", "WARNING")):
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(logger_level)
        logger.propagate = False
