"""From CSV records to COPY batches: normalise, hash and format each row, count what happened.

This is the CPU-heavy half of loading a file; it runs in a parse worker process (see ``worker.py``) while
the loader's connection writes the previous batch, so that Python and PostgreSQL use both cores.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

from ingestor.catalog import ReportType
from ingestor.constituents.matcher import Matcher
from ingestor.parse.csvfile import CsvProblem, RecoveredRecord, ReportCsv
from ingestor.parse.normalize import Anomaly, NormalizedRow, Rejection, RowNormalizer

BATCH_BYTES = 2 * 1024 * 1024
"""A batch also ends at this many bytes of COPY text, so wide rows cannot make batches (memory) large."""

MAX_REJECTED_SAMPLES = 100
"""Rejected rows kept per file in ``ss_rejected_rows`` (all are counted)."""

NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


@dataclass(frozen=True, slots=True)
class RejectedRow:
    line: int
    reason: str
    detail: str
    excerpt: str


@dataclass
class LoadStats:
    """What became of a file's rows. ``rows_read = inserted + duplicates + rejected``."""

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
    parser_peak_rss_kb: int = 0

    def reject(self, line: int, rejection: Rejection, excerpt: str = "") -> None:
        self.rejected += 1
        self.rejects[rejection.reason] += 1
        if len(self.samples) < MAX_REJECTED_SAMPLES:
            self.samples.append(RejectedRow(line, rejection.reason, rejection.detail, excerpt[:500]))


@dataclass(frozen=True, slots=True)
class Batch:
    """COPY text of up to ``batch_rows`` rows (repeats inside the batch already dropped) and their keys.

    ``data`` holds one line per row, ``\\n``-terminated (COPY escapes line breaks inside values, so
    ``data.split(b"\\n")`` recovers the rows); ``keys`` holds one line of ``copy_key_stage`` per row:
    position, event_hash, legacy hash, the inputs of the finding key (subject address and port; the raw
    row only when there is no address), and the row's organisations (``org_ids``, also the last column of
    its ``data`` line). ``legacy`` says whether any row has a legacy hash.
    """

    data: bytes
    keys: bytes
    rows: int
    legacy: bool = False


def copy_text(value: str | None) -> str:
    """A text value in COPY text format."""
    return NULL if value is None else value.translate(_COPY_ESCAPES)


def _number(value: int | None) -> str:
    return NULL if value is None else str(value)


def copy_line(row: NormalizedRow) -> str:
    """The row's columns of ``copy_events`` after (report_type, report_date, file_id), in COPY text format."""
    if row.plain:  # no value contains a backslash, tab or line break: nothing to escape
        return "\t".join(
            (
                row.ip or NULL,
                _number(row.port),
                _number(row.asn),
                row.geo or NULL,
                row.hostname or NULL,
                row.tag or NULL,
                row.severity or NULL,
                row.event_time or NULL,
                row.raw_json,
                row.event_hash,
            )
        )
    return "\t".join(
        (
            row.ip or NULL,
            _number(row.port),
            _number(row.asn),
            copy_text(row.geo),
            copy_text(row.hostname),
            copy_text(row.tag),
            copy_text(row.severity),
            row.event_time or NULL,
            row.raw_json.replace("\\", "\\\\"),
            row.event_hash,
        )
    )


def read_header(stream: IO[bytes]) -> list[str]:
    """The header of a report file (the stream is left where it was)."""
    position = stream.tell()
    try:
        reader = ReportCsv(stream)
        header = reader.header
        reader.close()
        return header
    finally:
        stream.seek(position)


def key_line(position: int, row: NormalizedRow, org_ids: str = NULL) -> str:
    """The row's line of ``copy_key_stage``: what the duplicate probes and the finding key need, and the row's
    organisations (``org_ids`` in COPY text, ``{3,7}`` or ``\\N``)."""
    raw = NULL if row.ip is not None else row.raw_json if row.plain else row.raw_json.replace("\\", "\\\\")
    return (
        f"{position}\t{row.event_hash}\t{row.legacy_hash or NULL}\t{row.ip or NULL}\t{_number(row.port)}\t{raw}"
        f"\t{org_ids}\n"
    )


def iter_batches(
    stream: IO[bytes],
    report: ReportType,
    prefix: str,
    batch_rows: int,
    stats: LoadStats,
    matcher: Matcher | None = None,
) -> Iterator[Batch]:
    """Read the whole file into batches, counting rows, rejections and cleaned values into ``stats``.

    Each row's organisations come from ``matcher`` (none without one): the last column of its COPY line.
    """
    reader = ReportCsv(stream)
    try:
        if not reader.header:
            return
        if reader.header_repairs:
            stats.anomalies[Anomaly.INVALID_UTF8_HEADER] += reader.header_repairs
        normalize = RowNormalizer(report, reader.header)
        lines: list[str] = []
        keys: list[str] = []
        seen: set[str] = set()
        size = 0
        legacy = False
        for record in reader.records():
            stats.rows_read += 1
            if type(record) is not list:  # the rare cases: kept out of the way of the common one
                if isinstance(record, CsvProblem):
                    stats.reject(record.line, Rejection(record.reason, record.message))
                    continue
                assert isinstance(record, RecoveredRecord)
                stats.anomalies[Anomaly.RUNAWAY_QUOTE] += 1
                record = record.cells
            row = normalize(record)
            if isinstance(row, Rejection):
                stats.reject(reader.line_num, row, ",".join(record))
                continue
            if row.anomalies:
                stats.anomalies.update(row.anomalies)
            if row.event_hash in seen:  # the same row twice in one batch: a duplicate
                stats.duplicates += 1
                continue
            seen.add(row.event_hash)
            org_ids = NULL if matcher is None else matcher.copy_value(row.ip, row.asn, row.hostname)
            keys.append(key_line(len(lines), row, org_ids))
            legacy = legacy or row.legacy_hash is not None
            line = prefix + copy_line(row) + "\t" + org_ids
            lines.append(line)
            size += len(line)
            if len(lines) >= batch_rows or size >= BATCH_BYTES:
                yield _batch(lines, keys, legacy)
                lines, keys, seen, size, legacy = [], [], set(), 0, False
        if not reader.ended_with_newline:
            stats.anomalies[Anomaly.NO_FINAL_NEWLINE] += 1
        if lines:
            yield _batch(lines, keys, legacy)
    finally:
        reader.close()


def _batch(lines: list[str], keys: list[str], legacy: bool) -> Batch:
    lines.append("")
    return Batch("\n".join(lines).encode("utf-8"), "".join(keys).encode("utf-8"), len(lines) - 1, legacy)
