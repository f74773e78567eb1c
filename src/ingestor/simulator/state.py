"""The simulator: configuration, simulated clock, report inventory, file cache, faults and counters.

A :class:`Simulator` is usable without HTTP (``handle_api`` and ``open_download`` are plain calls);
:class:`~ingestor.simulator.server.SimulatorServer` puts it on a port. Generated files are rendered once
into a per-simulator temporary directory, so that each download knows its Content-Length and is
streamed from disk; the directory is removed by :meth:`Simulator.close` (or at garbage collection).
"""

from __future__ import annotations

import contextlib
import gzip
import shutil
import tempfile
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

from ingestor.catalog import Catalog, ReportType, load_catalog
from ingestor.simulator.api import ApiResponse, handle_api
from ingestor.simulator.config import ApiKey, SimulatorConfig
from ingestor.simulator.faults import Counters, FaultControl, Faults
from ingestor.simulator.reports import Inventory, Report, read_records

CHUNK_BYTES = 64 * 1024

BOGUS_BODIES = {
    "html": (
        "text/html; charset=utf-8",
        b"<!DOCTYPE html>\n<html><head><title>503 Service Temporarily Unavailable</title></head>\n"
        b"<body><h1>Service Temporarily Unavailable</h1><p>Please try again later.</p></body></html>\n",
    ),
    "json": ("application/json", b'{"error": "report temporarily unavailable, please retry"}\n'),
    "foreign_csv": ("text/csv; charset=utf-8", b'"name","value"\n"alpha","1"\n"beta","2"\n'),
}
"""What the ``bogus_body`` fault serves instead of a report: (Content-Type, body)."""


@dataclass(frozen=True, slots=True)
class Download:
    """One prepared download: what to announce and how much of it to send."""

    report: Report
    path: Path
    """The bytes served: the report file, or a copy altered by the faults (gzip, no final newline, ...)."""
    content_length: int | None
    """The Content-Length header (the full size, also when the body is truncated); ``None``: chunked."""
    send_bytes: int
    fault: str | None
    """``"empty"``, ``"truncated"`` or ``None``."""
    headers: tuple[tuple[str, str], ...]
    stream_rate: int | None = None
    trickle: float = 0.0
    """Seconds between single bytes (0: no trickle)."""
    endless: bool = False
    """After the file, repeat :attr:`filler` without end."""
    filler: bytes = b""
    gzip: bool = False
    """Compress on the fly (endless bodies only; other compressed bodies are files of their own)."""
    close: bool = False
    """Close the connection after the body (truncated bodies, a wrong Content-Length)."""

    @property
    def complete(self) -> bool:
        return self.fault is None and not self.endless

    def chunks(self) -> Iterator[bytes]:
        """The body in chunks, throttled to ``stream_rate`` bytes/s or trickled when set."""
        blocks = self._endless() if self.endless else self._file()
        if self.trickle > 0:
            for block in blocks:
                for byte in block:
                    time.sleep(self.trickle)
                    yield bytes((byte,))
        elif self.stream_rate:
            yield from _paced(blocks, self.stream_rate)
        else:
            yield from blocks

    def _file(self) -> Iterator[bytes]:
        remaining = self.send_bytes
        with self.path.open("rb") as src:
            while remaining > 0:
                block = src.read(min(CHUNK_BYTES, remaining))
                if not block:
                    return
                remaining -= len(block)
                yield block

    def _endless(self) -> Iterator[bytes]:
        def plain() -> Iterator[bytes]:
            with self.path.open("rb") as src:
                while block := src.read(CHUNK_BYTES):
                    yield block
            filler = self.filler * max(1, CHUNK_BYTES // max(len(self.filler), 1))
            while True:
                yield filler

        if not self.gzip:
            yield from plain()
            return
        compress = zlib.compressobj(wbits=31)
        for block in plain():
            if data := compress.compress(block) + compress.flush(zlib.Z_SYNC_FLUSH):
                yield data


def _paced(blocks: Iterator[bytes], rate: int) -> Iterator[bytes]:
    """Re-cut ``blocks`` into pieces that leave no earlier than ``rate`` bytes/s allows."""
    size = min(CHUNK_BYTES, max(1, rate // 10))
    started = time.monotonic()
    sent = 0
    for block in blocks:
        for offset in range(0, len(block), size):
            piece = block[offset : offset + size]
            sent += len(piece)
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
            yield piece


class Simulator:
    """The local Shadowserver Reports API and download host, without the HTTP layer."""

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        faults: Faults | None = None,
        catalog: Catalog | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self.config = config or SimulatorConfig()
        self.catalog = catalog or load_catalog()
        self.keys: dict[str, ApiKey] = {k.key: k for k in self.config.keys}
        self.faults = FaultControl(faults, seed=self.config.seed)
        self.counters = Counters()
        self._clock: Callable[[], datetime] | None = self.config.clock
        self._today: date | None = self.config.today
        self.inventory = Inventory(self.config, self.catalog, self.today())
        self._own_cache = cache_dir is None
        self.cache_dir = Path(tempfile.mkdtemp(prefix="ss-sim-")) if cache_dir is None else cache_dir
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.cache_dir, True) if self._own_cache else None
        self._render_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # -- clock --------------------------------------------------------------------------------------

    def now(self) -> datetime:
        """Simulated UTC now: the clock, else noon of the configured today, else the real time."""
        if self._clock is not None:
            return self._clock().astimezone(UTC)
        if self._today is not None:
            return datetime(self._today.year, self._today.month, self._today.day, 12, tzinfo=UTC)
        return datetime.now(UTC)

    def today(self) -> date:
        return self.now().date()

    def set_today(self, today: date) -> None:
        """Move the simulated date (noon UTC); new days get their reports."""
        self._clock, self._today = None, today

    def set_clock(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock

    # -- inventory ----------------------------------------------------------------------------------

    def available(self, start: date, end: date) -> list[Report]:
        """Reports dated ``start`` … ``end`` that are published by the simulated now."""
        now = self.now()
        return [r for r in self.inventory.between(start, end, now.date()) if r.available_at <= now]

    def reports(self, **filters: Any) -> list[Report]:
        """All available reports (every date), optionally filtered by attribute, e.g. ``type="scan_ssl"``."""
        found = self.available(date.min, date.max)
        return [r for r in found if all(getattr(r, k) == v for k, v in filters.items())]

    def report(self, report_id: str) -> Report | None:
        """The available report with this id."""
        report = self.inventory.get(report_id, self.today())
        return report if report is not None and report.available_at <= self.now() else None

    def type_entry(self, name: str) -> ReportType | None:
        """The schema entry of a catalog type or of a type this simulator lists; else ``None``."""
        if name in self.catalog.types:
            return self.catalog.types[name]
        if name in (*self.config.types, *self.config.unknown_types):
            return self.inventory.type_entry(name)
        return None

    def publish(
        self, report_type: str, day: date, *, subscription: str | None = None, variant: str = "geo", **changes: Any
    ) -> Report:
        """Add a report at runtime (new id), e.g. ``publish("scan_ssl", d, rows=5, file=old.file)``.

        ``changes`` are :class:`Report` fields: ``rows``, ``style``, ``malformed``, ``available_at``,
        ``file``, ``seed``.
        """
        sub = subscription or self.config.subscriptions()[0]
        return self.inventory.publish(report_type, day, sub, variant, **changes)

    # -- files --------------------------------------------------------------------------------------

    def path_of(self, report: Report) -> Path:
        """The file's bytes on disk, rendering a generated report on first use."""
        if report.source is not None:
            return report.source
        target = self.cache_dir / f"{report.id}.csv"
        if target.exists():
            return target
        with self._locks_guard:
            lock = self._render_locks.setdefault(report.id, threading.Lock())
        with lock:
            if not target.exists():
                partial = target.with_suffix(".part")
                with partial.open("wb") as out:
                    report.write(out)
                partial.replace(target)
        return target

    def content(self, report: Report) -> bytes:
        """The whole file (for tests with small reports)."""
        return self.path_of(report).read_bytes()

    def records(self, report: Report) -> Iterator[dict[str, str]]:
        """The file's rows as dicts of strings keyed by its header (extra cells dropped)."""
        rows = read_records(self.path_of(report))
        try:
            nothing: list[str] = []
            header = next(rows, nothing)
            for cells in rows:
                yield dict(zip(header, cells, strict=False))
        finally:
            rows.close()

    def open_download(self, report_id: str, *, head: bool = False) -> Download | None:
        """Prepare ``GET /dl/<id>``: ``None`` means 404. ``head=True`` applies no fault and no latency."""
        report = self.report(report_id)
        faults = self.faults.snapshot()
        if report is None or report_id in faults.gone_ids:
            return None
        if not head:
            self.counters.record_request(report_id)
        if not head and faults.download_latency > 0:
            time.sleep(faults.download_latency)
        fault = None if head else self.faults.take_download_fault(report.type)
        content_type = "text/csv; charset=utf-8" if faults.csv_charset else "text/csv"
        if faults.bogus_body:
            content_type, body = BOGUS_BODIES[faults.bogus_body]
            path = self._derived(f"bogus-{faults.bogus_body}", lambda out: out.write(body))
        else:
            path = self.path_of(report)
        headers = [("Content-Type", content_type), ("Content-Disposition", f'attachment; filename="{report.file}"')]
        if faults.gzip_body == "labelled":
            headers.append(("Content-Encoding", "gzip"))
        if faults.endless_body:
            return Download(
                report,
                path,
                None,
                0,
                fault,
                tuple(headers),
                faults.stream_rate,
                faults.trickle_seconds,
                endless=True,
                filler=_last_line(path),
                gzip=faults.gzip_body is not None,
            )
        if faults.no_final_newline:
            path = self._derived(f"{path.name}.trimmed", lambda out: out.write(path.read_bytes().rstrip(b"\r\n")))
        if faults.gzip_body:
            path = self._derived(f"{path.name}.gz", lambda out: _gzip_copy(path, out))
        size = path.stat().st_size
        length = 0 if fault == "empty" else size
        send = int(size * min(max(faults.truncate_fraction, 0.0), 0.99)) if fault == "truncated" else length
        if faults.short_content_length > 0 and fault is None:
            length = int(size * min(faults.short_content_length, 1.0))
        close = fault == "truncated" or length != send
        return Download(
            report, path, length, send, fault, tuple(headers), faults.stream_rate, faults.trickle_seconds, close=close
        )

    def _derived(self, name: str, write: Callable[[IO[bytes]], object]) -> Path:
        """A file of the cache made once by ``write`` (an altered copy of a report, a bogus body)."""
        target = self.cache_dir / name
        if target.exists():
            return target
        with self._locks_guard:
            lock = self._render_locks.setdefault(name, threading.Lock())
        with lock:
            if not target.exists():
                partial = target.with_name(target.name + ".part")
                with partial.open("wb") as out:
                    write(out)
                partial.replace(target)
        return target

    # -- API ----------------------------------------------------------------------------------------

    def handle_api(self, api_method: str, body: bytes, headers: Mapping[str, str], verb: str = "POST") -> ApiResponse:
        """Answer ``<verb> /api2/<api_method>`` and count it."""
        response = handle_api(self, api_method, body, headers, verb)
        self.counters.record_api(api_method, response.status)
        return response

    # -- lifecycle ----------------------------------------------------------------------------------

    def reset_cache(self) -> None:
        """Forget rendered files (they are rendered again, identically, on the next download)."""
        for path in self.cache_dir.glob("*"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def close(self) -> None:
        """Remove the file cache."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _last_line(path: Path) -> bytes:
    """The file's last line (with a line break), repeated by an endless body."""
    with path.open("rb") as src:
        src.seek(max(0, path.stat().st_size - CHUNK_BYTES))
        lines = src.read().rstrip(b"\r\n").rsplit(b"\n", 1)
    return lines[-1] + b"\n"


def _gzip_copy(path: Path, out: IO[bytes]) -> None:
    with path.open("rb") as src, gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as packed:
        shutil.copyfileobj(src, packed, CHUNK_BYTES)
