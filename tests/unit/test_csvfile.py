"""The streaming CSV reader on hostile files: runaway quotes, endless lines, bad header bytes."""

from __future__ import annotations

import csv
import io
import tracemalloc
from collections.abc import Iterator

from ingestor.parse.csvfile import LINE_TOO_LONG, CsvProblem, RecoveredRecord, ReportCsv

HEADER = '"timestamp","ip","tag","port","asn"'


def row(n: int) -> str:
    """A row as Shadowserver writes them: strings quoted, integers bare."""
    return f'"2026-11-20 00:00:{n % 60:02d}Z","192.0.2.{n % 250}","tag{n}",{n},64496'


def report(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def records(data: bytes, **options: int) -> list[list[str] | CsvProblem | RecoveredRecord]:
    reader = ReportCsv(io.BytesIO(data), **options)
    return list(reader.records())


def test_normal_rows_come_out_exactly_as_csv_reads_them() -> None:
    lines = [HEADER] + [row(n) for n in range(50)]
    lines[7] = '"2026-11-20 00:00:07Z","192.0.2.7","multi\nline, with a comma",7,64496'
    lines[9] = '"2026-11-20 00:00:09Z","192.0.2.9","a ""quoted"" word",9,64496'
    data = report(lines)
    expected = list(csv.reader(io.StringIO(data.decode(), newline="")))
    reader = ReportCsv(io.BytesIO(data))
    assert [reader.header, *reader.records()] == expected
    assert reader.ended_with_newline and reader.header_repairs == 0


def test_a_stray_quote_does_not_swallow_the_rows_after_it() -> None:
    lines = [HEADER] + [row(n) for n in range(2000)]
    lines[10] = '"2026-11-20 00:00:09Z","192.0.2.9","tag9",9,"64496'  # a stray quote opens the last field
    found = records(report(lines))

    assert len(found) == 2000
    recovered = found[9]
    assert isinstance(recovered, RecoveredRecord) and recovered.line == 11
    assert recovered.cells == ["2026-11-20 00:00:09Z", "192.0.2.9", "tag9", "9", "64496"]
    clean = list(csv.reader(io.StringIO("\n".join(lines[11:]) + "\n", newline="")))
    assert found[10:] == clean  # every later row intact, in order
    assert found[:9] == list(csv.reader(io.StringIO("\n".join(lines[1:10]) + "\n", newline="")))


def test_a_stray_quote_in_bare_rows_is_caught_at_the_next_line() -> None:
    lines = ['"timestamp","ip","port"'] + [f"2026-11-20,192.0.2.{n},{n}" for n in range(6)]
    lines[2] = '2026-11-20,"192.0.2.1,1'
    found = records(report(lines))
    assert found == [
        ["2026-11-20", "192.0.2.0", "0"],
        RecoveredRecord(3, ["2026-11-20", "192.0.2.1,1"]),
        *[["2026-11-20", f"192.0.2.{n}", str(n)] for n in range(2, 6)],
    ]


def test_quoted_line_breaks_stay_one_record() -> None:
    data = b'"a","b","c"\n"1","banner line 1\nServer: x, y\nline 3","3"\n"4","5","6"\n'
    assert records(data) == [["1", "banner line 1\nServer: x, y\nline 3", "3"], ["4", "5", "6"]]


def test_a_quoted_field_that_never_closes_is_bounded_by_lines() -> None:
    # The lines after the stray quote do not look like rows (another width): only the bound catches it.
    lines = ['"a","b","c"', '"1","never closed,3'] + [f"free text {n}, more" for n in range(30)] + ['"x","y","z"']
    found = records(report(lines), max_record_lines=10)
    assert found[0] == RecoveredRecord(2, ["1", "never closed,3"])
    assert found[1:-1] == [[f"free text {n}", " more"] for n in range(30)]
    assert found[-1] == ["x", "y", "z"]


def test_a_line_longer_than_the_limit_is_skipped_without_being_read_whole() -> None:
    class Endless(io.RawIOBase):
        """A header, a 64 MiB line of one character, then two rows, generated as it is read."""

        def __init__(self) -> None:
            self._parts: Iterator[bytes] = iter(
                [HEADER.encode() + b"\n", *([b"A" * (1 << 20)] * 64), b"\n", report([row(1), row(2)])]
            )
            self._buffer = b""

        def readable(self) -> bool:
            return True

        def readinto(self, target: memoryview) -> int:  # type: ignore[override]
            while not self._buffer:
                part = next(self._parts, None)
                if part is None:
                    return 0
                self._buffer = part
            size = min(len(target), len(self._buffer))
            target[:size], self._buffer = self._buffer[:size], self._buffer[size:]
            return size

    tracemalloc.start()
    try:
        reader = ReportCsv(io.BufferedReader(Endless()), max_line_chars=64 * 1024)
        found = list(reader.records())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found[0] == CsvProblem(2, "line longer than 65536 characters, skipped", LINE_TOO_LONG)
    assert found[1:] == [next(csv.reader([row(1)])), next(csv.reader([row(2)]))]
    assert peak < 16 * (1 << 20), f"{peak} bytes held for a 64 MiB line"  # coarse: the line was never held


def test_a_long_line_inside_an_open_quote_ends_the_runaway() -> None:
    lines = [HEADER, '"2026-11-20 00:00:01Z","192.0.2.1","x",1,"64496', "B" * 5000, row(3)]
    found = records(report(lines), max_line_chars=1000)
    assert isinstance(found[0], CsvProblem) and found[0].reason == LINE_TOO_LONG and found[0].line == 3
    assert isinstance(found[1], RecoveredRecord) and found[1].line == 2
    assert found[2] == next(csv.reader([row(3)]))


def test_header_names_with_bytes_that_are_not_utf8_are_repaired_as_latin1() -> None:
    data = b'"timestamp","caf\xe9","ip"\n"2026-11-20 00:00:00Z","x","192.0.2.1"\n'
    reader = ReportCsv(io.BytesIO(data))
    assert reader.header == ["timestamp", "café", "ip"] and reader.header_repairs == 1


def test_blank_lines_before_the_header_are_skipped() -> None:
    reader = ReportCsv(io.BytesIO(b"\n\n<html><body>error</body></html>\n"))
    assert reader.header == ["<html><body>error</body></html>"]


def test_a_missing_final_newline_is_noticed() -> None:
    reader = ReportCsv(io.BytesIO(report([HEADER, row(1)]).rstrip(b"\n")))
    assert len(list(reader.records())) == 1 and not reader.ended_with_newline
    crlf = ReportCsv(io.BytesIO(report([HEADER, row(1)]).replace(b"\n", b"\r\n")))
    assert len(list(crlf.records())) == 1 and crlf.ended_with_newline
