"""Keep secrets and download capabilities out of logs, error messages and the database.

A report's download id is a bearer capability: whoever has ``https://dl.shadowserver.org/<id>`` can fetch
the file. Ids are registered here as soon as they are listed; every log record and every error text that
is stored goes through :func:`redact`.

Two kinds of values, two mechanisms:

* **secrets** (the API key and secret, the database password): a handful, replaced wherever they appear,
  by one regular expression rebuilt when one is added;
* **download ids**: thousands per listing. Text is cut into tokens of the characters ids are made of,
  and each token is looked up in a set: the cost of :meth:`Redactor.redact` grows with the text, not
  with the number of ids, and registering an id costs a set insertion. Only the ids of the current
  listing window and of the one before it are kept (:meth:`Redactor.begin_window`), so a long-running
  service does not accumulate every id it ever saw, and what is still in flight stays redactable.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

REDACTED = "<redacted>"
_URL = re.compile(r"https?://[^\s'\"<>]+")
_MIN_LENGTH = 4


class Redactor:
    """Sensitive strings, replaced wherever they appear."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._ids: set[str] = set()
        self._previous_ids: frozenset[str] = frozenset()
        self._id_chars: frozenset[str] = frozenset()
        self._token: re.Pattern[str] | None = None

    def add(self, *values: str) -> None:
        """Register secrets (values shorter than 4 characters are ignored)."""
        fresh = {value for value in values if value and len(value) >= _MIN_LENGTH} - self._values
        if not fresh:
            return
        with self._lock:
            self._values |= fresh
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(value) for value in ordered))

    def add_ids(self, ids: Iterable[str]) -> None:
        """Register download ids of the current listing window (shorter than 4 characters: ignored)."""
        fresh = [value for value in ids if len(value) >= _MIN_LENGTH]
        if not fresh:
            return
        with self._lock:
            self._ids.update(fresh)
            chars = self._id_chars.union("".join(fresh))
            if chars != self._id_chars:  # rare: the first ids, or ids of a new alphabet
                self._id_chars = frozenset(chars)
                alphabet = "".join(sorted(re.escape(char) for char in chars))
                self._token = re.compile(f"[{alphabet}]{{{_MIN_LENGTH},}}")

    def begin_window(self) -> None:
        """A new listing starts: forget the ids of the window before the last one."""
        with self._lock:
            self._previous_ids = frozenset(self._ids)
            self._ids = set()

    def redact(self, text: str) -> str:
        """Replace registered values and ids, and the path of every URL, with ``<redacted>``."""
        text = _URL.sub(_redact_url, text)
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        token = self._token
        if token is not None:
            current, previous = self._ids, self._previous_ids
            text = token.sub(
                lambda match: REDACTED if match.group() in current or match.group() in previous else match.group(),
                text,
            )
        return text

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._pattern = None
            self._ids = set()
            self._previous_ids = frozenset()
            self._id_chars = frozenset()
            self._token = None


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
