"""Keep secrets and download capabilities out of logs, error messages and the database.

A report's download id is a bearer capability: whoever has ``https://dl.shadowserver.org/<id>`` can fetch
the file. Ids are registered here as soon as they are listed; every log record and every error text that
is stored goes through :func:`redact`.
"""

from __future__ import annotations

import re
import threading

REDACTED = "<redacted>"
_URL = re.compile(r"https?://[^\s'\"<>]+")
_MIN_LENGTH = 4


class Redactor:
    """A set of sensitive strings, replaced wherever they appear."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, *values: str) -> None:
        """Register sensitive values (values shorter than 4 characters are ignored)."""
        fresh = {value for value in values if value and len(value) >= _MIN_LENGTH} - self._values
        if not fresh:
            return
        with self._lock:
            self._values |= fresh
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(value) for value in ordered))

    def redact(self, text: str) -> str:
        """Replace registered values, and the path of every URL, with ``<redacted>``."""
        text = _URL.sub(_redact_url, text)
        pattern = self._pattern
        return pattern.sub(REDACTED, text) if pattern is not None else text

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._pattern = None


def _redact_url(match: re.Match[str]) -> str:
    """Keep scheme and host of a URL (useful to an operator), drop credentials, path and query."""
    url = match.group()
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    tail = "/" + REDACTED if "/" in rest.strip("/") or "@" in rest else ""
    return f"{scheme}://{host}{tail}"


REDACTOR = Redactor()
"""The process-wide redactor used by logging and by everything that stores error text."""


def redact(text: str) -> str:
    """Redact ``text`` with the process-wide redactor."""
    return REDACTOR.redact(text)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none), redacted: how errors are
    quoted in logs, stored errors and health reasons."""
    lines = str(exc).strip().splitlines()
    return redact(lines[0].strip() if lines else type(exc).__name__)
