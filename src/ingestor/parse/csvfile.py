"""Read a Shadowserver report CSV incrementally, the way v1.0.0's ``csv.DictReader`` saw it.

The file is decoded as UTF-8 (a leading BOM is dropped); bytes that are not UTF-8 are carried as lone
surrogates (``surrogateescape``) so that one bad byte never stops the file: the normaliser repairs and
counts them per row. Rows come out as the cell lists of ``csv.reader`` with the same default (``excel``)
dialect, blank lines skipped, so that building v1.0.0's row dict from them is exact.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

MAX_FIELD_CHARS = 32 * 1024 * 1024
"""Largest single CSV field accepted (Python's default of 128 KiB is smaller than some real banners)."""

csv.field_size_limit(MAX_FIELD_CHARS)


@dataclass(frozen=True, slots=True)
class CsvProblem:
    """A record that ``csv`` could not read; the reader goes on with the next line."""

    line: int
    message: str


class ReportCsv:
    """One report file opened for reading: its header and an iterator over its records."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
        self._reader = csv.reader(self._text)
        self.header: list[str] = self._read_header()

    def _read_header(self) -> list[str]:
        try:
            return next(self._reader)
        except StopIteration:
            return []

    @property
    def line_num(self) -> int:
        """Physical line number of the end of the last record read (1-based)."""
        return self._reader.line_num

    def records(self) -> Iterator[list[str] | CsvProblem]:
        """Yield each non-blank record's cells, or a :class:`CsvProblem` for a record csv rejects."""
        reader = self._reader
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield CsvProblem(reader.line_num, str(exc))
                continue
            if cells:
                yield cells

    def close(self) -> None:
        self._text.detach()
