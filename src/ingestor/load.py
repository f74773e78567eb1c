"""Load one report file into ``ss_events``: parse, normalise and hash in a producer thread, while the
caller's connection COPYs each batch into a staging table and moves it on with ``INSERT ... ON CONFLICT
DO NOTHING``.

Everything happens inside the caller's transaction: a file is loaded whole or not at all. Counts always
add up: ``rows_read = inserted + duplicates + rejected``.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import IO, Any

import psycopg

from ingestor.catalog import Catalog
from ingestor.db.queries import QUERIES
from ingestor.errors import StopRequested
from ingestor.parse.csvfile import CsvProblem, ReportCsv
from ingestor.parse.normalize import NormalizedRow, Reject, Rejection, RowNormalizer

MAX_REJECTED_SAMPLES = 100
"""Rejected rows kept per file in ``ss_rejected_rows`` (all are counted)."""

_NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


@dataclass(frozen=True, slots=True)
class RejectedRow:
    line: int
    reason: str
    detail: str
    excerpt: str


@dataclass
class LoadStats:
    """What became of a file's rows."""

    rows_read: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    anomalies: Counter[str] = field(default_factory=Counter)
    rejects: Counter[str] = field(default_factory=Counter)
    samples: list[RejectedRow] = field(default_factory=list)
    known_type: bool = True
    columns_unknown: list[str] = field(default_factory=list)
    columns_missing: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def reject(self, line: int, rejection: Rejection, excerpt: str = "") -> None:
        self.rejected += 1
        self.rejects[rejection.reason] += 1
        if len(self.samples) < MAX_REJECTED_SAMPLES:
            self.samples.append(RejectedRow(line, rejection.reason, rejection.detail, excerpt[:500]))


@dataclass
class _Batch:
    data: bytes
    rows: int


def _text(value: str | None) -> str:
    return _NULL if value is None else value.translate(_COPY_ESCAPES)


def _number(value: int | None) -> str:
    return _NULL if value is None else str(value)


def copy_line(row: NormalizedRow) -> str:
    """One line of COPY text format for ``ss_stage`` (the JSON is ASCII and has no raw control chars)."""
    return "\t".join(
        (
            row.ip or _NULL,
            _number(row.port),
            _number(row.asn),
            _text(row.geo),
            _text(row.hostname),
            _text(row.tag),
            _text(row.severity),
            row.event_time or _NULL,
            row.raw_json.replace("\\", "\\\\"),
            row.event_hash,
            row.legacy_hash or _NULL,
        )
    )


class _Producer(threading.Thread):
    """Reads, normalises and formats the file into COPY batches on a bounded queue."""

    def __init__(
        self,
        reader: ReportCsv,
        normalizer: RowNormalizer,
        stats: LoadStats,
        batch_rows: int,
        stop: threading.Event,
    ) -> None:
        super().__init__(name="report-parser", daemon=True)
        self.reader = reader
        self.normalizer = normalizer
        self.stats = stats
        self.batch_rows = batch_rows
        self.stop = stop
        self.batches: queue.Queue[_Batch | BaseException | None] = queue.Queue(maxsize=2)
        self.cancelled = threading.Event()
        self.completed = False

    def run(self) -> None:
        try:
            for batch in self._batches():
                if not self._put(batch):
                    return
            self._put(None)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(exc)

    def _put(self, item: _Batch | BaseException | None) -> bool:
        while not self.cancelled.is_set():
            try:
                self.batches.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _batches(self) -> Iterator[_Batch]:
        stats, normalize, reader = self.stats, self.normalizer, self.reader
        lines: list[str] = []
        for record in reader.records():
            stats.rows_read += 1
            if isinstance(record, CsvProblem):
                stats.reject(record.line, Rejection(Reject.CSV_ERROR, record.message))
                continue
            row = normalize(record)
            if isinstance(row, Rejection):
                stats.reject(reader.line_num, row, ",".join(record)[:500])
                continue
            if row.anomalies:
                stats.anomalies.update(row.anomalies)
            lines.append(copy_line(row))
            if len(lines) >= self.batch_rows:
                yield _Batch(("\n".join(lines) + "\n").encode("utf-8"), len(lines))
                lines = []
                if self.stop.is_set() or self.cancelled.is_set():
                    return
        self.completed = True
        if lines:
            yield _Batch(("\n".join(lines) + "\n").encode("utf-8"), len(lines))


def load_report(
    conn: psycopg.Connection[Any],
    stream: IO[bytes],
    *,
    report_type: str,
    report_date: date,
    file_id: int | None,
    catalog: Catalog,
    batch_rows: int = 10_000,
    stop: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
) -> LoadStats:
    """Load a report CSV read from ``stream``; the caller owns (and commits) the transaction."""
    started = time.monotonic()
    stop = stop or threading.Event()
    stats = LoadStats()
    reader = ReportCsv(stream)
    try:
        if not reader.header:
            return stats
        report = catalog.get(report_type, reader.header)
        stats.known_type = report.known
        if report.known:
            stats.columns_unknown = [c for c in reader.header if c not in report.fields]
            stats.columns_missing = [c for c in report.fields if c not in reader.header]
        conn.execute(QUERIES["create_stage"])
        params = {"report_type": report_type, "report_date": report_date, "file_id": file_id}
        producer = _Producer(reader, RowNormalizer(report, reader.header), stats, batch_rows, stop)
        producer.start()
        try:
            while (item := producer.batches.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                if stop.is_set():
                    raise StopRequested("stop requested while loading; the file's transaction is abandoned")
                conn.execute(QUERIES["truncate_stage"])
                with conn.cursor().copy(QUERIES["copy_stage"]) as copy:
                    copy.write(item.data)
                inserted = conn.execute(QUERIES["insert_events"], params).rowcount
                stats.inserted += inserted
                stats.duplicates += item.rows - inserted
                if progress is not None:
                    progress(item.rows)
        finally:
            producer.cancelled.set()
            producer.join()
        if not producer.completed:
            raise StopRequested("stop requested while loading; the file's transaction is abandoned")
        if stats.rows_read:
            conn.execute(QUERIES["add_report_count"], {**params, "inserted": stats.inserted})
        for sample in stats.samples if file_id is not None else ():
            conn.execute(
                QUERIES["insert_rejected_row"],
                {
                    "file_id": file_id,
                    "line": sample.line,
                    "reason": sample.reason,
                    "detail": sample.detail,
                    "excerpt": sample.excerpt,
                },
            )
        return stats
    finally:
        stats.seconds = time.monotonic() - started
        reader.close()


def counts_json(counter: Counter[str]) -> str:
    return json.dumps(dict(sorted(counter.items())))
