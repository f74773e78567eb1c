"""Property tests: the fast serialiser, and the row identity the normaliser computes, equal v1.0.0's recipe —
``json.dumps(row, sort_keys=True, default=str)`` over the dict ``csv.DictReader`` builds — for any row:
non-ASCII and astral characters, bytes that were not UTF-8, quotes, backslashes, control characters and NUL,
``%`` (the template's own marker), repeated header names, and rows shorter or longer than the header.

Hypothesis runs derandomised (the same examples every run) and without an example database, so the suite
stays deterministic; raise ``max_examples`` locally to search harder.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingestor.catalog import load_catalog
from ingestor.parse.csvfile import ReportCsv
from ingestor.parse.normalize import EXTRA_CELLS_KEY, NormalizedRow, RowNormalizer, RowSerializer

PROPERTY = settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # the autouse environment fixture is harmless
)
CATALOG = load_catalog()

UNDECODABLE = st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF)
"""A byte that was not UTF-8, as the CSV reader carries it (``surrogateescape``)."""
CHARACTERS = st.one_of(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),
    st.sampled_from('"\\%\x00\t\r\n\x1b\x1f\x7f\u2028'),
    st.characters(min_codepoint=0x80, max_codepoint=0x10FFFF, exclude_categories=("Cs",)),
)
CELLS = st.text(st.one_of(CHARACTERS, UNDECODABLE), max_size=10)
NAMES = st.one_of(
    st.sampled_from(["ip", "port", "timestamp", "geo", "%s", "%", '"q"', "é", "ip ", ""]),
    st.text(CHARACTERS, max_size=8),
)
"""Header names from a small pool (so that names repeat) and arbitrary text."""


def v1_serialize(row: dict[Any, Any]) -> str:
    return json.dumps(row, sort_keys=True, default=str)


def dict_reader_row(header: list[str], cells: list[str]) -> dict[str, Any]:
    """The dict ``csv.DictReader`` builds for ``cells`` (extra cells under our reserved key: v1.0.0 crashed)."""
    text = io.StringIO(newline="")
    csv.writer(text, quoting=csv.QUOTE_ALL).writerow(cells)
    row: dict[Any, Any] = next(csv.DictReader(io.StringIO(text.getvalue(), newline=""), fieldnames=header))
    if None in row:
        row[EXTRA_CELLS_KEY] = row.pop(None)
    return row


def repaired(cell: str) -> str:
    """A cell whose undecodable bytes are read as ISO-8859-1, as the normaliser does."""
    return re.sub("[\udc80-\udcff]", lambda match: chr(ord(match.group()) - 0xDC00), cell)


@PROPERTY
@given(st.lists(st.one_of(NAMES, st.text(UNDECODABLE, min_size=1, max_size=2)), min_size=1, max_size=8), st.data())
def test_the_serializer_is_json_dumps_of_the_row_dict(header: list[str], data: st.DataObject) -> None:
    cells = data.draw(st.lists(CELLS, min_size=len(header), max_size=len(header)))
    assert RowSerializer(header)(cells) == v1_serialize(dict(zip(header, cells, strict=True)))


@PROPERTY
@given(st.lists(NAMES, min_size=1, max_size=8), st.lists(CELLS, min_size=1, max_size=11))
def test_the_row_identity_is_v1s_hash_of_the_dict_reader_row(header: list[str], cells: list[str]) -> None:
    result = RowNormalizer(CATALOG.get("scan_example", header), header)(cells)
    assert isinstance(result, NormalizedRow)
    expected = v1_serialize(dict_reader_row(header, [repaired(cell) for cell in cells]))
    assert result.event_hash == hashlib.sha256(expected.encode("utf-8")).hexdigest()


def test_a_latin1_file_hashes_as_v1_hashed_it() -> None:
    """v1.0.0 decoded text/csv without a charset as ISO-8859-1: a Latin-1 file's rows keep its hashes."""
    data = '"timestamp","ip","city"\n"2024-01-04 08:04:37Z","192.0.2.1","Wörgl café"\n'.encode("iso-8859-1")
    reader = ReportCsv(io.BytesIO(data))
    (cells,) = list(reader.records())
    assert isinstance(cells, list)
    result = RowNormalizer(CATALOG.get("scan_example", reader.header), reader.header)(cells)
    assert isinstance(result, NormalizedRow) and "invalid_utf8" in result.anomalies
    (v1_row,) = csv.DictReader(io.StringIO(data.decode("iso-8859-1")))
    assert result.event_hash == hashlib.sha256(v1_serialize(v1_row).encode()).hexdigest()
