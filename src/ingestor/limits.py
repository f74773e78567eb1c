"""Bounds on what one report file may cost: its size, its compression ratio and the disk it is spooled to.

Every file passes through here before it is parsed: a download is written into its spool file by a
:class:`SpoolWriter`, a compressed body or a ``.gz`` file is inflated by an :class:`Inflater`, an
imported file is copied by the import code with the same :class:`FileLimits`. Each bound fails the file
with one clear error, never the process:

* ``SS_MAX_FILE_SIZE``: the largest (decompressed) file, download or archive member;
* ``SS_MAX_COMPRESSION_RATIO``: decompressed bytes per compressed byte of a gzip body, ``.gz`` file or zip
  member (a decompression bomb is stopped within a few MiB of output);
* ``SS_MIN_FREE_DISK``: the space that must stay free where files are spooled, checked before a download
  starts (with its announced size) and every few MiB while it is written.

Decompression runs in pieces of at most :data:`PIECE_BYTES`, so memory does not grow with the ratio.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from ingestor.errors import DiskSpaceError, FileTooLargeError

if TYPE_CHECKING:
    from ingestor.config import Settings

MiB = 1 << 20
GiB = 1 << 30

PIECE_BYTES = 256 * 1024
"""Largest piece of decompressed output produced at once."""

RATIO_FLOOR = 4 * MiB
"""Output below this size is never judged by its ratio (a small file can compress unusually well)."""

DISK_CHECK_BYTES = 8 * MiB
"""While spooling, free disk space is checked again after every this many bytes."""

GZIP_MAGIC = b"\x1f\x8b"


def format_bytes(count: float) -> str:
    """``1536`` -> ``1.5 KiB``: sizes in messages for operators."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(count) < 1024 or unit == "PiB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class FileLimits:
    """The configured bounds (see the module docstring); ``0`` switches the disk check off."""

    max_bytes: int = 4 * GiB
    max_ratio: float = 100.0
    min_free_bytes: int = 512 * MiB

    @classmethod
    def from_settings(cls, settings: Settings) -> FileLimits:
        return cls(int(settings.max_file_size), settings.max_compression_ratio, int(settings.min_free_disk))

    def check_size(self, size: int, label: str) -> None:
        """Raise :class:`FileTooLargeError` when ``size`` bytes exceed the maximum file size."""
        if size > self.max_bytes:
            raise FileTooLargeError(
                f"{label}: larger than SS_MAX_FILE_SIZE ({format_bytes(self.max_bytes)}); not loaded"
            )

    def check_ratio(self, produced: int, consumed: int, label: str) -> None:
        """Raise :class:`FileTooLargeError` when ``consumed`` compressed bytes gave too many bytes."""
        if produced > RATIO_FLOOR and produced > self.max_ratio * max(consumed, 1):
            raise FileTooLargeError(
                f"{label}: decompresses to more than {self.max_ratio:g} times its compressed size "
                f"(SS_MAX_COMPRESSION_RATIO; a decompression bomb?); not loaded"
            )


def free_bytes(stream: IO[bytes]) -> int | None:
    """Free space (for an unprivileged user) on the file system of an open file; None if not a file."""
    try:
        stat = os.fstatvfs(stream.fileno())
    except (OSError, ValueError, AttributeError):  # an in-memory stream has no file descriptor
        return None
    return stat.f_bavail * stat.f_frsize


class SpoolWriter:
    """Writes a report's bytes into its spool file within the limits; tracks size, SHA-256 and last byte."""

    def __init__(self, sink: IO[bytes], limits: FileLimits, label: str) -> None:
        self._sink = sink
        self._limits = limits
        self._label = label
        self._digest = hashlib.sha256()
        self._next_disk_check = DISK_CHECK_BYTES
        self.size = 0
        self.last_byte = b""

    def reserve(self, expected: int | None) -> None:
        """Before writing: fail at once if ``expected`` bytes are too many or would not fit on the disk."""
        if expected is not None:
            self._limits.check_size(expected, self._label)
        self._check_disk(expected or 0)

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        self._limits.check_size(self.size, self._label)
        if self.size >= self._next_disk_check:
            self._check_disk(0)
            self._next_disk_check = self.size + DISK_CHECK_BYTES
        self._sink.write(data)
        self._digest.update(data)
        self.last_byte = data[-1:]

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    @property
    def ends_with_newline(self) -> bool:
        return self.last_byte in (b"\n", b"\r")

    def _check_disk(self, needed: int) -> None:
        minimum = self._limits.min_free_bytes
        if not minimum:
            return
        free = free_bytes(self._sink)
        if free is not None and free - needed < minimum:
            raise DiskSpaceError(
                f"{self._label}: only {format_bytes(free)} free where files are spooled (SS_WORK_DIR); "
                f"SS_MIN_FREE_DISK keeps {format_bytes(minimum)} free"
                + (f" and the file announces {format_bytes(needed)}" if needed else "")
            )


class Inflater:
    """Streaming gzip (or zlib) decompression in bounded pieces, several gzip members as ``gzip`` reads them.

    ``feed`` compressed bytes and write what it yields; ``finish`` raises ``EOFError`` if the stream ended
    before its end marker (a truncated body or file). The ratio limit is checked after every piece.
    """

    def __init__(self, limits: FileLimits, label: str, *, wbits: int = 31) -> None:
        self._limits = limits
        self._label = label
        self._wbits = wbits
        self._inflate = zlib.decompressobj(wbits)
        self.consumed = 0
        self.produced = 0

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decompressed pieces of ``data`` (raises ``zlib.error`` on corrupt input)."""
        self.consumed += len(data)
        while data:
            if self._inflate.eof:  # another gzip member follows (zero padding between members is skipped)
                data = data.lstrip(b"\x00")
                if not data:
                    return
                self._inflate = zlib.decompressobj(self._wbits)
            piece = self._inflate.decompress(data, PIECE_BYTES)
            data = self._inflate.unused_data if self._inflate.eof else self._inflate.unconsumed_tail
            if piece:
                self.produced += len(piece)
                self._limits.check_ratio(self.produced, self.consumed - len(data), self._label)
                yield piece

    def finish(self) -> Iterator[bytes]:
        """What the decompressor still holds; ``EOFError`` if the compressed stream is incomplete."""
        piece = self._inflate.flush()
        if piece:
            self.produced += len(piece)
            self._limits.check_ratio(self.produced, self.consumed, self._label)
            yield piece
        if not self._inflate.eof:
            raise EOFError("the compressed data ends before its end marker (truncated)")


class InflatingReader:
    """A readable stream of the decompressed bytes of a gzip file, within the ratio limit."""

    def __init__(self, raw: IO[bytes], limits: FileLimits, label: str) -> None:
        self._raw = raw
        self._inflater = Inflater(limits, label)
        self._pieces: Iterator[bytes] = iter(())
        self._done = False

    def read(self, size: int = -1, /) -> bytes:
        """Up to one piece of decompressed bytes (``b""`` at the end); ``size`` is only an upper bound."""
        while True:
            piece = next(self._pieces, None)
            if piece is not None:
                return piece if size < 0 or len(piece) <= size else self._keep(piece, size)
            if self._done:
                return b""
            block = self._raw.read(MiB)
            if block:
                self._pieces = self._inflater.feed(block)
            else:
                self._done = True
                self._pieces = self._inflater.finish()

    def _keep(self, piece: bytes, size: int) -> bytes:
        rest = self._pieces
        self._pieces = _chain(piece[size:], rest)
        return piece[:size]

    def close(self) -> None:
        self._raw.close()


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest
