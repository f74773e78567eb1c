"""From records to COPY batches: sizes, keys, repeats, counts."""

from __future__ import annotations

import io

import pytest

from ingestor.catalog import load_catalog
from ingestor.parse import batches
from ingestor.parse.batches import LoadStats, iter_batches

HEADER = b'"timestamp","ip","port","banner"\n'


def rows(count: int, banner: str = "x") -> bytes:
    return b"".join(f'"2026-11-20 00:00:00Z","192.0.2.{i % 250}",{i},"{banner}"\n'.encode() for i in range(count))


def run(data: bytes, batch_rows: int = 1000, with_keys: bool = True) -> tuple[list[batches.Batch], LoadStats]:
    stats = LoadStats()
    report = load_catalog().get("scan_http")
    out = list(
        iter_batches(io.BytesIO(data), report, "scan_http\t2026-11-20\t7\t", batch_rows, stats, with_keys=with_keys)
    )
    return out, stats


def test_batches_split_at_the_row_limit_and_lines_are_rows() -> None:
    out, stats = run(HEADER + rows(25), batch_rows=10)
    assert [b.rows for b in out] == [10, 10, 5]
    lines = out[0].data.split(b"\n")
    assert lines[-1] == b"" and len(lines) == 11
    assert lines[0].startswith(b"scan_http\t2026-11-20\t7\t192.0.2.0\t0\t")
    assert stats.rows_read == 25 and stats.duplicates == 0


def test_batches_also_split_at_the_byte_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batches, "BATCH_BYTES", 4000)
    out, _ = run(HEADER + rows(30, banner="y" * 400), batch_rows=1000)
    assert len(out) > 2 and all(len(b.data) < 4000 + 1000 for b in out)
    assert sum(b.rows for b in out) == 30


def test_keys_number_the_rows_of_their_batch_and_can_be_left_out() -> None:
    out, _ = run(HEADER + rows(3), batch_rows=2)
    keys = out[1].keys.decode().splitlines()
    assert [k.split("\t")[0] for k in keys] == ["0"] and keys[0].endswith("\t\\N")
    bare, _ = run(HEADER + rows(3), batch_rows=2, with_keys=False)
    assert all(b.keys == b"" for b in bare) and sum(b.rows for b in bare) == 3


def test_a_row_repeated_inside_a_batch_is_counted_as_a_duplicate_once() -> None:
    line = b'"2026-11-20 00:00:00Z","192.0.2.1",80,"x"\n'
    out, stats = run(HEADER + line * 3 + rows(1))
    assert sum(b.rows for b in out) == 2
    assert (stats.rows_read, stats.duplicates) == (4, 2)
