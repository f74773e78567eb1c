"""Runtime switches (errors, latency, broken downloads) and the counters tests assert on.

Both are shared by the HTTP handler threads and the test thread, so every read-modify-write happens
under a lock. :class:`FaultControl` is set at construction and changed at runtime with ``update()`` or
``clear()`` (or ``POST /_control/faults``); "next N" switches count down as calls consume them.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, NamedTuple

SET_FIELDS = frozenset({"truncate_types", "empty_types", "gone_ids"})
CHOICES = {"bogus_body": ("html", "json", "foreign_csv"), "gzip_body": ("labelled", "unlabelled")}
"""Allowed values of the text switches (``None`` switches them off)."""


@dataclass
class Faults:
    """Fault and behaviour switches; all off by default."""

    api_error_rate: float = 0.0
    """Probability of ``api_error_status`` for each authenticated API call."""
    api_error_status: int = 503
    api_errors_next: int = 0
    """The next N authenticated API calls fail with ``api_error_status``."""
    rate_limit_next: int = 0
    """The next N authenticated API calls get ``429 {"error": "Rate limit exceeded"}``."""
    retry_after: int | None = None
    """``Retry-After`` seconds sent with 429 (and with ``api_error_status`` 503)."""
    force_status: int | None = None
    """Every API call after authentication gets this status until cleared (e.g. 401, 503)."""
    error_200_next: int = 0
    """The next N API calls answer ``200 {"error": ...}``."""
    api_latency: float = 0.0
    download_latency: float = 0.0
    stream_rate: int | None = None
    """Download body speed limit in bytes per second."""
    truncate_next: int = 0
    truncate_rate: float = 0.0
    truncate_types: frozenset[str] = field(default_factory=frozenset)
    truncate_fraction: float = 0.5
    """Share of the file sent before the connection is closed (Content-Length announces all of it)."""
    empty_next: int = 0
    empty_rate: float = 0.0
    empty_types: frozenset[str] = field(default_factory=frozenset)
    gone_ids: frozenset[str] = field(default_factory=frozenset)
    """Listed ids whose download answers 404 (expired)."""
    shuffle_keys: bool = False
    """Shuffle the key order of each ``reports/list`` item."""
    csv_charset: bool = True
    """Send ``text/csv; charset=utf-8`` (``True``) or a bare ``text/csv``."""
    bogus_body: str | None = None
    """Answer downloads with 200 and something that is not the report: ``"html"`` (an error page of a
    proxy), ``"json"`` (an error object) or ``"foreign_csv"`` (a CSV whose columns are not the report's)."""
    gzip_body: str | None = None
    """gzip-compress download bodies, ``"labelled"`` (``Content-Encoding: gzip``) or ``"unlabelled"``
    (no header, as a misconfigured server or proxy sends them)."""
    short_content_length: float = 0.0
    """When > 0, announce this fraction of the body as ``Content-Length`` but send all of it."""
    no_final_newline: bool = False
    """Serve files without their final line break (every real report ends with one)."""
    endless_body: bool = False
    """Send the report, then its last row again and again, without end (chunked, no Content-Length)."""
    trickle_seconds: float = 0.0
    """When > 0, send download bodies one byte at a time, this many seconds apart."""


class ApiFault(NamedTuple):
    """A response that replaces the method's answer."""

    status: int
    payload: dict[str, str]
    headers: dict[str, str]


class FaultControl:
    """Thread-safe holder of the current :class:`Faults`."""

    def __init__(self, faults: Faults | None = None, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._faults = dataclasses.replace(faults) if faults else Faults()
        self._rng = random.Random(seed)

    def snapshot(self) -> Faults:
        """A copy of the current settings."""
        with self._lock:
            return dataclasses.replace(self._faults)

    def update(self, **changes: Any) -> Faults:
        """Change some settings; unknown names raise ``TypeError``. Lists become sets where needed."""
        kinds = {f.name: str(f.type) for f in dataclasses.fields(Faults)}
        unknown = sorted(set(changes) - set(kinds))
        if unknown:
            raise TypeError(f"unknown fault setting(s): {', '.join(unknown)}")
        clean = {name: _checked(name, kinds[name], value) for name, value in changes.items()}
        with self._lock:
            self._faults = dataclasses.replace(self._faults, **clean)
            return dataclasses.replace(self._faults)

    def clear(self) -> None:
        """Switch every fault off."""
        with self._lock:
            self._faults = Faults()

    def expire(self, report_id: str) -> None:
        """Make a listed id answer 404 from now on."""
        with self._lock:
            self._faults.gone_ids = self._faults.gone_ids | {report_id}

    def as_json(self) -> dict[str, Any]:
        """The settings as a JSON-ready object."""
        data = dataclasses.asdict(self.snapshot())
        return {k: sorted(v) if k in SET_FIELDS else v for k, v in data.items()}

    def take_api_fault(self) -> ApiFault | None:
        """Decide (and consume) the fault of one authenticated API call."""
        with self._lock:
            f = self._faults
            retry = {"Retry-After": str(f.retry_after)} if f.retry_after is not None else {}
            if f.force_status is not None:
                return ApiFault(f.force_status, {"error": _reason(f.force_status)}, {})
            if f.api_errors_next > 0:
                f.api_errors_next -= 1
                return ApiFault(f.api_error_status, {"error": _reason(f.api_error_status)}, retry)
            if f.rate_limit_next > 0:
                f.rate_limit_next -= 1
                return ApiFault(429, {"error": "Rate limit exceeded"}, retry)
            if f.api_error_rate > 0 and self._rng.random() < f.api_error_rate:
                return ApiFault(f.api_error_status, {"error": _reason(f.api_error_status)}, retry)
            if f.error_200_next > 0:
                f.error_200_next -= 1
                return ApiFault(200, {"error": "Internal error, please try again later"}, {})
            return None

    def take_download_fault(self, report_type: str) -> str | None:
        """Decide (and consume) the fault of one download: ``"empty"``, ``"truncated"`` or ``None``."""
        with self._lock:
            f = self._faults
            if f.empty_next > 0:
                f.empty_next -= 1
                return "empty"
            if f.truncate_next > 0:
                f.truncate_next -= 1
                return "truncated"
            if report_type in f.empty_types:
                return "empty"
            if report_type in f.truncate_types:
                return "truncated"
            if f.empty_rate > 0 and self._rng.random() < f.empty_rate:
                return "empty"
            if f.truncate_rate > 0 and self._rng.random() < f.truncate_rate:
                return "truncated"
            return None


def _checked(name: str, kind: str, value: Any) -> Any:
    """``value`` converted to the field's type (sets from lists; ints accepted for floats)."""
    if name in SET_FIELDS:
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise TypeError(f"{name}: expected a list of strings")
        return frozenset(value)
    if name in CHOICES:
        if value is None or value in CHOICES[name]:
            return value
        raise TypeError(f"{name}: expected null or one of {', '.join(CHOICES[name])}, got {value!r}")
    if value is None and "None" in kind:
        return None
    if kind == "bool" and isinstance(value, bool):
        return value
    if not isinstance(value, bool) and kind == "float" and isinstance(value, int | float):
        return float(value)
    if not isinstance(value, bool) and kind.startswith("int") and isinstance(value, int):
        return value
    raise TypeError(f"{name}: expected {kind}, got {value!r}")


def _reason(status: int) -> str:
    return {
        401: "Invalid API key",
        403: "Forbidden",
        404: "Not found",
        429: "Rate limit exceeded",
        500: "Internal server error",
        502: "Bad gateway",
        503: "Service unavailable",
        504: "Gateway timeout",
    }.get(status, f"HTTP {status}")


class Counters:
    """What the simulator served: API calls per method and status, downloads per id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._api: Counter[tuple[str, int]] = Counter()
        self._requested: Counter[str] = Counter()
        self._started: Counter[str] = Counter()
        self._completed: Counter[str] = Counter()

    def record_api(self, method: str, status: int) -> None:
        with self._lock:
            self._api[(method, status)] += 1

    def record_download(self, report_id: str, *, completed: bool, count: int = 1) -> None:
        """Count a started download, or (``completed=True``) one whose every byte was delivered."""
        with self._lock:
            (self._completed if completed else self._started)[report_id] += count

    def api_calls(self, method: str | None = None, status: int | None = None) -> int:
        """API calls, optionally of one method and/or one status."""
        with self._lock:
            return sum(
                n
                for (m, s), n in self._api.items()
                if (method is None or m == method) and (status is None or s == status)
            )

    def record_request(self, report_id: str) -> None:
        """Count a download request as it arrives, before any latency or answer."""
        with self._lock:
            self._requested[report_id] += 1

    def downloads_requested(self, report_id: str | None = None) -> int:
        """Download requests received, answered or not yet (a latency fault holds the answer back)."""
        with self._lock:
            return self._requested[report_id] if report_id else sum(self._requested.values())

    def downloads_started(self, report_id: str | None = None) -> int:
        with self._lock:
            return self._started[report_id] if report_id else sum(self._started.values())

    def downloads_completed(self, report_id: str | None = None) -> int:
        """Downloads that delivered the whole file (empty and truncated ones do not count)."""
        with self._lock:
            return self._completed[report_id] if report_id else sum(self._completed.values())

    def reset(self) -> None:
        with self._lock:
            self._api.clear()
            self._requested.clear()
            self._started.clear()
            self._completed.clear()

    def as_json(self) -> dict[str, Any]:
        """``{"api": {method: {status: n}}, "downloads": {id: {"started", "completed"}}}``."""
        with self._lock:
            api: dict[str, dict[str, int]] = {}
            for (method, status), n in sorted(self._api.items()):
                api.setdefault(method, {})[str(status)] = n
            ids = sorted(set(self._started) | set(self._completed))
            downloads = {i: {"started": self._started[i], "completed": self._completed[i]} for i in ids}
            return {"api": api, "downloads": downloads}
