"""Turn one CSV record into the typed common columns, the stored ``raw_data`` and the row's identity.

What is hashed: v1.0.0's recipe (``rowhash``) over the row as ``csv.DictReader`` would have built it from
the file's text: header names as keys, the cells as received, ``None`` for the cells missing at the end
of a short row (and a long row's extra cells, on which v1.0.0 crashed, under ``_extra_cells``). None of
the cleaning below touches it: not the typing of the common columns, not the NUL removal from ``raw_data``.

The one exception is text that is not UTF-8. Such bytes cannot be hashed as they are, so they are read as
ISO-8859-1 (one character per byte, counted as ``invalid_utf8``) and the hash runs over that repaired
text. That is still v1.0.0's hash wherever v1.0.0 could have made one: it decoded ``text/csv`` without a
charset as ISO-8859-1, byte by byte, so a row of ASCII and such bytes (a Latin-1 file) hashes exactly as
it did there; a row of valid non-ASCII UTF-8 gets v1.0.0's mojibake hash as well (``legacy_hash``, which
the loader checks). A row that mixes valid multi-byte UTF-8 with invalid bytes matches neither (v1.0.0 read
both as Latin-1) and, if v1.0.0 stored it, is stored once more: rare enough to accept. (Had the download
host sent ``charset=utf-8``, v1.0.0 would have hashed U+FFFD for invalid bytes; which header it sends is
unknown, seed-contract.md §5.)

Only the typed columns and ``raw_data`` are cleaned, and every cleaning is counted as an *anomaly* of
the row (the row is kept). A row is *rejected* only when it cannot be stored at all.

Subject columns come from the report type's catalog entry; for a type the catalog does not know, or a
file whose header lacks the catalog's subject IP column, from the same rule applied to the header.
"""

from __future__ import annotations

import ipaddress
import json
import operator
import re
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import NamedTuple, TypeVar

from ingestor.catalog import MAX_ASN, SEVERITIES, ReportType, subject_from_columns
from ingestor.parse.csvfile import CSV_ERROR, LINE_TOO_LONG, SURROGATES, latin1_repaired
from ingestor.parse.rowhash import hash_text, legacy_latin1_row, serialize_row

_json_string: Callable[[str], str] = json.encoder.encode_basestring_ascii

EXTRA_CELLS_KEY = "_extra_cells"
"""Reserved key holding the cells of a row that is longer than the header (v1.0.0 crashed on those)."""

MAX_ROW_CHARS = 16 * 1024 * 1024
"""A serialised row longer than this is rejected rather than stored."""

T = TypeVar("T")


class Anomaly:
    """Names of per-row anomalies: the row is kept, the named value was cleaned or dropped."""

    INVALID_IP = "invalid_ip"
    INVALID_PORT = "invalid_port"
    INVALID_ASN = "invalid_asn"
    INVALID_TIMESTAMP = "invalid_timestamp"
    UNKNOWN_SEVERITY = "unknown_severity"
    MISSING_CELLS = "missing_cells"
    EXTRA_CELLS = "extra_cells"
    NUL_REMOVED = "nul_removed"
    INVALID_UTF8 = "invalid_utf8"
    RUNAWAY_QUOTE = "runaway_quote"
    """A quoted field ran on over the following rows; this row's line was read again on its own."""
    INVALID_UTF8_HEADER = "invalid_utf8_header"
    """Per file: header names holding bytes that are not UTF-8 (read as ISO-8859-1, as in cells)."""
    NO_FINAL_NEWLINE = "no_final_newline"
    """Per file: the last line has no line break (an imported file; a download like that is retried)."""


class Reject:
    """Reasons a record is rejected (not stored)."""

    CSV_ERROR = CSV_ERROR
    ROW_TOO_LARGE = "row_too_large"
    LINE_TOO_LONG = LINE_TOO_LONG


class NormalizedRow(NamedTuple):
    """One row ready to load."""

    ip: str | None
    port: int | None
    asn: int | None
    geo: str | None
    hostname: str | None
    tag: str | None
    severity: str | None
    event_time: str | None
    raw_json: str
    event_hash: str
    legacy_hash: str | None
    anomalies: tuple[str, ...]
    plain: bool = False
    """True when no value needed escaping: the COPY line can be built without escaping anything."""


class Rejection(NamedTuple):
    """A record that could not be stored, with its reason."""

    reason: str
    detail: str


def parse_ip(value: str) -> str | None:
    """A valid IPv4/IPv6 address (or network) in text form, or None. Raises ValueError if invalid."""
    value = value.strip()
    if not value:
        return None
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, value)
        except (OSError, ValueError):
            continue
        return value
    if "/" in value:
        return str(ipaddress.ip_interface(value))
    raise ValueError(value)


def parse_int(value: str, low: int, high: int) -> int | None:
    """An integer within [low, high], None for an empty cell. Raises ValueError otherwise."""
    value = value.strip()
    if not value:
        return None
    number = int(value)
    if not low <= number <= high:
        raise ValueError(value)
    return number


def parse_asn(value: str) -> int | None:
    """An AS number (``13335`` or ``AS13335``); 0 means unknown. Raises ValueError if invalid."""
    value = value.strip()
    if value[:2] in ("AS", "as"):
        value = value[2:]
    number = parse_int(value, 0, MAX_ASN)
    return number or None


_USUAL_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z?")


def parse_timestamp(value: str) -> str | None:
    """An ISO 8601 UTC timestamp (naive values are UTC, as Shadowserver documents). Raises ValueError."""
    value = value.strip()
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    if _USUAL_TIMESTAMP.fullmatch(value):  # validated above; PostgreSQL reads this form as it is
        return value if value[-1] == "Z" else value + "Z"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def _index(header: Sequence[str], name: str | None) -> int | None:
    """Position of a column, the last one if the header repeats it (as ``dict(zip(...))`` keeps)."""
    if name is None:
        return None
    found = None
    for position, column in enumerate(header):
        if column == name:
            found = position
    return found


class RowSerializer:
    """``json.dumps(row, sort_keys=True)`` for a row as wide as its header, without building the dict.

    The key part of the output is fixed per file, so it becomes a ``%``-template; each value goes through
    the same C escaper ``json`` uses (``encode_basestring_ascii``). Byte-identical to v1.0.0's
    serialisation (pinned by the Hypothesis tests in ``tests/unit/test_row_serializer.py``), about three
    times faster.
    """

    def __init__(self, header: Sequence[str]) -> None:
        last = {name: position for position, name in enumerate(header)}
        keys = sorted(last)
        positions = [last[key] for key in keys]
        if len(positions) == 1:
            only = positions[0]
            self._pick: Callable[[list[str]], tuple[str, ...]] = lambda cells: (cells[only],)
        else:
            self._pick = operator.itemgetter(*positions)
        self._template = "{" + ", ".join(_json_string(key).replace("%", "%%") + ": %s" for key in keys) + "}"

    def __call__(self, cells: list[str]) -> str:
        return self._template % tuple(map(_json_string, self._pick(cells)))


class RowNormalizer:
    """Normalises the records of one file, given its report type and header."""

    def __init__(self, report: ReportType, header: Sequence[str], max_row_chars: int = MAX_ROW_CHARS) -> None:
        self.header = list(header)
        self.width = len(self.header)
        self.report = report
        self.max_row_chars = max_row_chars
        subject = report.subject
        if subject.ip is not None and subject.ip not in self.header:
            subject = subject_from_columns(self.header)
        self.subject = subject
        # a column of an older file may carry its old name (legacy.json): find it under either
        current = [report.current_name(column) for column in self.header]
        self._ip = _index(current, subject.ip)
        self._port = _index(current, subject.port)
        self._asn = _index(current, subject.asn)
        self._geo = _index(current, subject.geo)
        self._hostname = _index(current, subject.hostname)
        self._tag = _index(current, "tag")
        self._severity = _index(current, "severity")
        self._timestamp = _index(current, "timestamp")
        self.default_severity = report.default_severity if self._severity is None else None
        self._header_ascii = all(column.isascii() for column in self.header)
        self._serialize = RowSerializer(self.header)

    def _row(self, cells: list[str]) -> dict[str, object]:
        """The dict ``csv.DictReader`` builds, with extra cells under a reserved key instead of ``None``."""
        row: dict[str, object] = dict(zip(self.header, cells, strict=False))
        count = len(cells)
        if count > self.width:
            row[EXTRA_CELLS_KEY] = cells[self.width :]
        elif count < self.width:
            for key in self.header[count:]:
                row[key] = None
        return row

    def __call__(self, cells: list[str]) -> NormalizedRow | Rejection:
        anomalies: list[str] = []
        if len(cells) == self.width:
            text = self._serialize(cells)
        else:
            anomalies.append(Anomaly.EXTRA_CELLS if len(cells) > self.width else Anomaly.MISSING_CELLS)
            text = serialize_row(self._row(cells))
        if len(text) > self.max_row_chars:
            return Rejection(Reject.ROW_TOO_LARGE, f"{len(text)} characters")
        raw_json = text
        legacy_hash = None
        plain = "\\" not in text  # nothing was escaped: no quote, backslash, control or non-ASCII character
        if not plain and "\\u" in text:  # non-ASCII or control characters: the rare, slower path
            row = self._row(cells)
            if "\\ud" in text and any(SURROGATES.search(cell) for cell in cells):
                anomalies.append(Anomaly.INVALID_UTF8)
                cells = [latin1_repaired(cell) for cell in cells]
                row = self._row(cells)
                text = raw_json = serialize_row(row)
            if "\\u0000" in text:
                anomalies.append(Anomaly.NUL_REMOVED)
                cells = [cell.replace("\x00", "") for cell in cells]
                raw_json = serialize_row(self._row(cells))
            if not self._header_ascii or not all(cell.isascii() for cell in cells):
                legacy_hash = hash_text(serialize_row(legacy_latin1_row(row)))
        event_hash = hash_text(text)
        return NormalizedRow(
            ip=self._parse(cells, self._ip, parse_ip, Anomaly.INVALID_IP, anomalies),
            port=self._parse(cells, self._port, _parse_port, Anomaly.INVALID_PORT, anomalies),
            asn=self._parse(cells, self._asn, parse_asn, Anomaly.INVALID_ASN, anomalies),
            geo=self._text(cells, self._geo),
            hostname=clean_hostname(self._text(cells, self._hostname)),
            tag=self._text(cells, self._tag),
            severity=self._severity_of(cells, anomalies),
            event_time=self._parse(cells, self._timestamp, parse_timestamp, Anomaly.INVALID_TIMESTAMP, anomalies),
            raw_json=raw_json,
            event_hash=event_hash,
            legacy_hash=legacy_hash,
            anomalies=tuple(anomalies),
            plain=plain,
        )

    @staticmethod
    def _text(cells: list[str], index: int | None) -> str | None:
        if index is None or index >= len(cells):
            return None
        return cells[index] or None

    @staticmethod
    def _parse(
        cells: list[str], index: int | None, parser: Callable[[str], T], anomaly: str, anomalies: list[str]
    ) -> T | None:
        if index is None or index >= len(cells):
            return None
        try:
            return parser(cells[index])
        except ValueError:
            anomalies.append(anomaly)
            return None

    def _severity_of(self, cells: list[str], anomalies: list[str]) -> str | None:
        if self._severity is None:
            return self.default_severity
        value = self._text(cells, self._severity)
        if value is None:
            return None
        value = value.strip().lower()
        if value not in SEVERITIES:
            anomalies.append(Anomaly.UNKNOWN_SEVERITY)
        return value or None


def _parse_port(value: str) -> int | None:
    return parse_int(value, 0, 65535)


def clean_hostname(value: str | None) -> str | None:
    """A hostname as IRIS Data Explorer compares it: without surrounding whitespace or the root's trailing dot,
    lowercased (``' MX.MyCorp.Example. '`` -> ``'mx.mycorp.example'``); None when nothing is left.

    Internationalised names stay in the form delivered: an A-label (``xn--bcher-kva.example``) as it is, a
    U-label (``bücher.example``) lowercased by Unicode's rules. Neither is converted into the other: a case's
    indicator matches the stored name only in the same form.
    """
    if value is None:
        return None
    value = value.strip()
    if value.endswith("."):
        value = value[:-1]
    return value.lower() or None
