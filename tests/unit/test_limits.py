"""Bounds on one file: size, compression ratio, free disk; bounded streaming decompression."""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path

import pytest

from ingestor.errors import DiskSpaceError, FileTooLargeError
from ingestor.limits import PIECE_BYTES, FileLimits, Inflater, InflatingReader, MiB, SpoolWriter, format_bytes

CSV = b'"timestamp","ip"\n' + b'"2026-11-20 00:00:00Z","192.0.2.1"\n' * 1000


def inflate(data: bytes, limits: FileLimits | None = None, feed: int = 1000) -> bytes:
    inflater = Inflater(limits or FileLimits(), "f.csv.gz")
    out = [piece for offset in range(0, len(data), feed) for piece in inflater.feed(data[offset : offset + feed])]
    out += list(inflater.finish())
    assert all(len(piece) <= PIECE_BYTES for piece in out)
    return b"".join(out)


def test_gzip_is_inflated_in_bounded_pieces_member_after_member() -> None:
    assert inflate(gzip.compress(CSV)) == CSV
    two = gzip.compress(CSV[:500]) + b"\0\0\0" + gzip.compress(CSV[500:])  # as gzip(1) reads them
    assert inflate(two) == CSV
    assert inflate(gzip.compress(CSV), feed=7) == CSV


def test_a_truncated_gzip_stream_is_an_eof_error() -> None:
    with pytest.raises(EOFError, match="truncated"):
        inflate(gzip.compress(CSV)[:-12])
    with pytest.raises(zlib.error):
        inflate(b"\x1f\x8b" + b"garbage" * 10)


def test_a_decompression_bomb_stops_a_few_mib_in() -> None:
    bomb = gzip.compress(b"\0" * (64 * MiB))  # 64 MiB of zeros in about 64 KiB
    inflater = Inflater(FileLimits(max_ratio=100), "bomb.gz")
    produced = 0
    with pytest.raises(FileTooLargeError, match="100 times its compressed size"):
        for offset in range(0, len(bomb), 64 * 1024):
            for piece in inflater.feed(bomb[offset : offset + 64 * 1024]):
                produced += len(piece)
    assert produced < 8 * MiB


def test_the_ratio_spares_small_files_that_compress_well() -> None:
    small = b"a," * (MiB // 2)
    assert inflate(gzip.compress(small), FileLimits(max_ratio=2)) == small


def test_the_inflating_reader_reads_a_gzip_file(tmp_path: Path) -> None:
    path = tmp_path / "f.csv.gz"
    path.write_bytes(gzip.compress(CSV))
    reader = InflatingReader(path.open("rb"), FileLimits(), "f.csv.gz")
    chunks = []
    while block := reader.read(100):
        assert len(block) <= 100
        chunks.append(block)
    reader.close()
    assert b"".join(chunks) == CSV


def test_the_writer_stops_at_the_maximum_size_and_tracks_the_last_byte() -> None:
    sink = io.BytesIO()
    writer = SpoolWriter(sink, FileLimits(max_bytes=1000), "big.csv")
    writer.write(b"x" * 999 + b"\n")
    assert writer.size == 1000 and writer.ends_with_newline
    with pytest.raises(FileTooLargeError, match=r"big.csv: larger than SS_MAX_FILE_SIZE \(1000 bytes\)"):
        writer.write(b"y")
    assert len(sink.getvalue()) == 1000
    with pytest.raises(FileTooLargeError):
        SpoolWriter(io.BytesIO(), FileLimits(max_bytes=1000), "big.csv").reserve(1001)


def test_the_writer_keeps_the_minimum_free_disk(tmp_path: Path) -> None:
    with (tmp_path / "spool").open("wb") as spool:
        SpoolWriter(spool, FileLimits(min_free_bytes=1), "f.csv").reserve(1000)
        with pytest.raises(DiskSpaceError, match="SS_MIN_FREE_DISK"):
            SpoolWriter(spool, FileLimits(min_free_bytes=1 << 60), "f.csv").reserve(None)
        writer = SpoolWriter(spool, FileLimits(min_free_bytes=1 << 60), "f.csv")
        with pytest.raises(DiskSpaceError):
            for _ in range(16):
                writer.write(b"z" * MiB)
        assert writer.size <= 9 * MiB  # checked again every 8 MiB


def test_sizes_read_well() -> None:
    assert [format_bytes(n) for n in (0, 1023, 1536, 4 << 30)] == ["0 bytes", "1023 bytes", "1.5 KiB", "4.0 GiB"]
