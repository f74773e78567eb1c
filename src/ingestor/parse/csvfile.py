"""Read a Shadowserver report CSV incrementally, the way v1.0.0's ``csv.DictReader`` saw it.

The file is decoded as UTF-8 (a leading BOM is dropped); bytes that are not UTF-8 are carried as lone
surrogates (``surrogateescape``) so that one bad byte never stops the file: the normaliser repairs and
counts them per row, and the header's names are repaired here (read as ISO-8859-1, as the normaliser
does for cells). Rows come out as the cell lists of ``csv.reader`` with the same default (``excel``)
dialect, blank lines skipped, so that building v1.0.0's row dict from them is exact.

Two things ``csv`` alone does not survive, and this reader does:

* **A physical line longer than** ``max_line_chars`` is skipped while it streams past (never held in
  memory) and reported as a :class:`CsvProblem` (``line_too_long``): such a row could not be stored.
* **A runaway quoted field.** Shadowserver rows are one line each, except for quoted values with line
  breaks in them. A stray ``"`` at the start of a field makes ``csv`` read on, line after line, until
  the next quote, merging good rows into one field. A record still open at a further line is taken for
  a runaway when that line parses as a complete row by itself (as many cells as the header, balanced
  quotes), or when the record grows beyond ``max_record_lines`` lines or ``max_line_chars`` characters.
  Its first line is then read again on its own (its open field ends with the line) and yielded as a
  :class:`RecoveredRecord`, and every following line is read again as the start of a record: nothing
  else is lost.
"""

from __future__ import annotations

import csv
import io
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

MAX_FIELD_CHARS = 32 * 1024 * 1024
"""Largest single CSV field accepted (Python's default of 128 KiB is smaller than some real banners)."""

MAX_LINE_CHARS = 16 * 1024 * 1024
"""A physical line longer than this is skipped (a row that long is rejected anyway: ``MAX_ROW_CHARS``)."""

MAX_RECORD_LINES = 10_000
"""A quoted field running over more lines than this is a runaway (real multi-line values are short)."""

LINE_TOO_LONG = "line_too_long"
CSV_ERROR = "csv_error"

SURROGATES = re.compile("[\udc80-\udcff]")
"""Lone surrogates: how ``surrogateescape`` carries bytes that are not UTF-8."""

csv.field_size_limit(MAX_FIELD_CHARS)


def latin1_repaired(text: str) -> str:
    """``text`` with every byte that was not UTF-8 (a lone surrogate) read as ISO-8859-1 instead."""
    return SURROGATES.sub(_latin1_char, text)


def _latin1_char(match: re.Match[str]) -> str:
    return chr(ord(match.group()) - 0xDC00)


@dataclass(frozen=True, slots=True)
class CsvProblem:
    """A record that could not be read (``reason``: ``csv_error`` or ``line_too_long``); reading goes on."""

    line: int
    message: str
    reason: str = CSV_ERROR


@dataclass(frozen=True, slots=True)
class RecoveredRecord:
    """The cells of a line whose quoted field ran away, read again on its own."""

    line: int
    cells: list[str]


def _cells(line: str) -> list[str]:
    """The cells of one physical line read as a record by itself (raises csv.Error)."""
    for cells in csv.reader([line.rstrip("\r\n")]):
        return cells
    return []


def cells_of(record: list[str] | RecoveredRecord) -> list[str]:
    """The cells of a record, whether read whole or recovered from a runaway quoted field."""
    return record.cells if isinstance(record, RecoveredRecord) else record


class _Runaway(Exception):
    """Raised out of the line source when the record being read turns out to be a runaway."""


class ReportCsv:
    """One report file opened for reading: its header and an iterator over its records."""

    def __init__(
        self,
        stream: IO[bytes],
        *,
        max_line_chars: int = MAX_LINE_CHARS,
        max_record_lines: int = MAX_RECORD_LINES,
    ) -> None:
        self._text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
        self._max_line_chars = max_line_chars
        self._max_record_lines = max_record_lines
        self._pending: deque[tuple[int, str]] = deque()
        """Lines to read again, after a runaway."""
        self._record: list[tuple[int, str]] = []
        """(line number, line) of the record being read."""
        self._record_chars = 0
        self._problems: list[CsvProblem] = []
        self._line = 0
        self.width = 0
        self.ended_with_newline = True
        """Whether the file's last line ends with a line break (every report's does)."""
        self.header_repairs = 0
        """Header names that held bytes which are not UTF-8 (repaired as ISO-8859-1)."""
        self._reader = csv.reader(self._lines())
        self.header: list[str] = self._read_header()
        self.width = len(self.header)

    def _read_header(self) -> list[str]:
        for record in self.records():
            if isinstance(record, CsvProblem):
                continue
            cells = record.cells if isinstance(record, RecoveredRecord) else record
            header = [latin1_repaired(name) for name in cells]
            self.header_repairs = sum(1 for old, new in zip(cells, header, strict=True) if old != new)
            return header
        return []

    @property
    def line_num(self) -> int:
        """Physical line number of the end of the last record read (1-based)."""
        return self._record[-1][0] if self._record else self._line

    def records(self) -> Iterator[list[str] | CsvProblem | RecoveredRecord]:
        """Yield each non-blank record's cells, a :class:`CsvProblem` for a line or record that cannot be
        read, or a :class:`RecoveredRecord` for the first line of a runaway quoted field."""
        record = self._record
        problems = self._problems
        while True:
            record.clear()
            try:
                cells = next(self._reader)
            except StopIteration:
                yield from self._take_problems()
                return
            except _Runaway:
                yield from self._take_problems()
                yield self._reread()
                self._reader = csv.reader(self._lines())
                continue
            except csv.Error as exc:
                yield from self._take_problems()
                yield CsvProblem(self.line_num, str(exc))
                continue
            if problems:
                yield from self._take_problems()
            if cells:
                yield cells

    def _take_problems(self) -> Iterator[CsvProblem]:
        found = list(self._problems)
        self._problems.clear()
        yield from found

    def _reread(self) -> RecoveredRecord | CsvProblem:
        """Read a runaway's first line on its own; queue its other lines to be read again."""
        (first_line, first), *rest = self._record
        self._pending.extendleft(reversed(rest))
        try:
            return RecoveredRecord(first_line, _cells(first))
        except csv.Error as exc:
            return CsvProblem(first_line, str(exc))

    def _lines(self) -> Iterator[str]:
        """Physical lines for ``csv.reader`` (line breaks kept), each at most ``max_line_chars`` long."""
        pending = self._pending
        record = self._record
        read = self._text.readline
        limit = self._max_line_chars + 1
        number = self._line
        last = ""
        try:
            while True:
                if pending:
                    entry = pending.popleft()
                else:
                    line = read(limit)
                    if not line:
                        return
                    number += 1
                    if len(line) == limit and line[-1] not in "\r\n":
                        self._line = number
                        self._skip_long_line(number)
                        last = ""
                        if record:  # a record reaching this far is a runaway, or too large to keep anyway
                            raise _Runaway
                        continue
                    entry = (number, line)
                    last = line
                record.append(entry)
                if len(record) > 1 and self._runs_away(entry[1]):  # the record goes on over another line
                    raise _Runaway
                yield entry[1]
        finally:
            self._line = number
            if last:
                self.ended_with_newline = last[-1] in "\r\n"

    def _skip_long_line(self, number: int) -> None:
        read = self._text.readline
        tail = ""
        while True:
            chunk = read(1 << 20)
            if not chunk:
                break
            tail = chunk
            if chunk[-1] in "\r\n":
                break
        self.ended_with_newline = tail[-1:] in ("\r", "\n")
        self._problems.append(
            CsvProblem(number, f"line longer than {self._max_line_chars} characters, skipped", LINE_TOO_LONG)
        )

    def _runs_away(self, line: str) -> bool:
        """Whether the record being read, now continued by ``line``, has run away (see the module doc)."""
        record = self._record
        if len(record) == 2:
            self._record_chars = len(record[0][1])
        self._record_chars += len(line)
        if len(record) > self._max_record_lines or self._record_chars > self._max_line_chars:
            return True
        return self.width > 1 and line.count('"') % 2 == 0 and _cell_count(line) == self.width

    def close(self) -> None:
        self._text.detach()


def _cell_count(line: str) -> int:
    try:
        return len(_cells(line))
    except csv.Error:
        return -1
