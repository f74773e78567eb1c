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


def run(data: bytes, batch_rows: int = 1000, report_type: str = "scan_http") -> tuple[list[batches.Batch], LoadStats]:
    stats = LoadStats()
    report = load_catalog().get(report_type)
    out = list(iter_batches(io.BytesIO(data), report, f"{report_type}\t2026-11-20\t7\t", batch_rows, stats))
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


def test_keys_number_the_rows_of_their_batch_and_carry_the_finding_key_inputs() -> None:
    out, _ = run(HEADER + rows(3), batch_rows=2)
    keys = out[1].keys.decode().splitlines()
    assert len(keys) == 1
    position, _, legacy, ip, port, raw, org_ids = keys[0].split("\t")
    assert (position, legacy, ip, port, raw, org_ids) == ("0", "\\N", "192.0.2.2", "2", "\\N", "\\N")
    assert not out[1].legacy


def test_rows_without_an_address_carry_their_raw_row_and_non_ascii_rows_their_legacy_hash() -> None:
    data = '"timestamp","email","note"\n"2026-11-20 00:00:00Z","a@example.org","caf\u00e9 \\ x"\n'.encode()
    out, _ = run(data, report_type="compromised_account")
    position, _, legacy, ip, port, raw, _ = out[0].keys.decode().rstrip("\n").split("\t")
    assert (position, ip, port) == ("0", "\\N", "\\N") and legacy != "\\N" and out[0].legacy
    assert raw == '{"email": "a@example.org", "note": "caf\\\\u00e9 \\\\\\\\ x", "timestamp": "2026-11-20 00:00:00Z"}'


def test_a_row_repeated_inside_a_batch_is_counted_as_a_duplicate_once() -> None:
    line = b'"2026-11-20 00:00:00Z","192.0.2.1",80,"x"\n'
    out, stats = run(HEADER + line * 3 + rows(1))
    assert sum(b.rows for b in out) == 2
    assert (stats.rows_read, stats.duplicates) == (4, 2)
