"""Local report files (e-mail deliveries) as pipeline sources: plain CSV, gzip, and zip archives.

Paths may be files or directories (searched recursively for ``*.csv``, ``*.gz`` and ``*.zip``). A file's
compression is told by its first bytes, not its name; a zip contributes every ``.csv`` member. The report
type and date come from the (inner) file name, ``YYYY-MM-DD-<type>-<identifier>.csv``, unless given.

Each file is read once while planning, to compute the SHA-256 of its CSV content: that is its ledger
key (``file:<sha256>``), so a file already loaded, plain or compressed, is skipped unless forced. A file
that cannot be read or named becomes an :class:`ImportProblem`; the others go on.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import threading
import time
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path, PurePosixPath
from typing import IO, Protocol

from ingestor import audit, ledger
from ingestor.api.client import FILE_NAME, DownloadResult
from ingestor.config import Settings
from ingestor.db.connect import Database
from ingestor.db.lock import IngestionLock
from ingestor.errors import ReportFileError
from ingestor.ops.filters import parse_type_name
from ingestor.pipeline import Ingestor, Reporter, ReportSource, RunResult

log = logging.getLogger(__name__)

SOURCE = "import"
SUFFIXES = (".csv", ".gz", ".zip")
"""File names picked up when walking a directory (case-insensitive)."""

_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"
_BLOCK = 1 << 20
_READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zlib.error, gzip.BadGzipFile, NotImplementedError)


@dataclass(frozen=True)
class ImportProblem:
    """A path that cannot be imported, and why (one line)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class LocalReport:
    """One CSV to import: a plain or gzip file, or a member of a zip archive (a :class:`ReportSource`)."""

    path: Path
    member: str | None
    report_type: str
    report_date: date
    file_name: str
    sha256: str
    size: int
    subscription: str = ""
    source: str = SOURCE

    @property
    def label(self) -> str:
        return f"{self.path.name}:{self.file_name}" if self.member is not None else self.path.name

    @property
    def source_key(self) -> str:
        return ledger.content_source_key(self.sha256)

    def open(self) -> ByteStream:
        """The CSV bytes, decompressed."""
        return _open_csv(self.path, self.member)

    def fetch(self, spool: IO[bytes]) -> DownloadResult:
        """Copy the CSV content into ``spool``; fail if it changed since it was planned."""
        started = time.monotonic()
        try:
            with closing(self.open()) as stream:
                size, digest = _copy(stream, spool)
        except _READ_ERRORS as exc:
            raise ReportFileError(f"{self.label}: cannot read: {_reason(exc)}") from None
        if digest != self.sha256:
            raise ReportFileError(f"{self.label}: the file changed while being imported")
        spool.flush()
        return DownloadResult(size=size, sha256=digest, seconds=time.monotonic() - started)


@dataclass
class ImportPlan:
    """What an import will load, and the paths it cannot."""

    reports: list[LocalReport] = field(default_factory=list)
    problems: list[ImportProblem] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    """Labels of files whose content another file of this import already has."""


@dataclass
class ImportOutcome:
    plan: ImportPlan
    already_loaded: list[str]
    result: RunResult | None


def find_files(paths: Iterable[Path]) -> Iterator[Path | ImportProblem]:
    """Named files as given; directories walked recursively (sorted) for ``SUFFIXES``."""
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
            if not found:
                yield ImportProblem(str(path), "no .csv, .gz or .zip file in this directory")
            yield from found
        elif path.exists():
            yield path
        else:
            yield ImportProblem(str(path), "no such file or directory")


def plan_import(
    paths: Sequence[Path], *, report_type: str | None = None, report_date: date | None = None
) -> ImportPlan:
    """Read every file once (SHA-256 of its CSV content), name it, and collect the problems."""
    plan = ImportPlan()
    seen: dict[str, str] = {}
    for found in find_files(paths):
        if isinstance(found, ImportProblem):
            plan.problems.append(found)
            continue
        for item in _csv_members(found, report_type, report_date):
            if isinstance(item, ImportProblem):
                plan.problems.append(item)
            elif item.sha256 in seen:
                plan.duplicates.append(f"{item.label} (same content as {seen[item.sha256]})")
            else:
                seen[item.sha256] = item.label
                plan.reports.append(item)
    return plan


def _csv_members(
    path: Path, report_type: str | None, report_date: date | None
) -> Iterator[LocalReport | ImportProblem]:
    try:
        with path.open("rb") as head:
            magic = head.read(4)
        if magic.startswith(_ZIP_MAGIC):
            with zipfile.ZipFile(path) as archive:
                members = [info.filename for info in archive.infolist() if _is_csv_member(info)]
            if not members:
                yield ImportProblem(str(path), "the zip archive holds no .csv file")
            for member in members:
                yield _describe(path, member, PurePosixPath(member).name, report_type, report_date)
            return
        inner = path.name[:-3] if magic.startswith(_GZIP_MAGIC) and path.name.lower().endswith(".gz") else path.name
        yield _describe(path, None, inner, report_type, report_date)
    except _READ_ERRORS as exc:
        yield ImportProblem(str(path), f"cannot read: {_reason(exc)}")


def _is_csv_member(info: zipfile.ZipInfo) -> bool:
    name = PurePosixPath(info.filename)
    hidden = name.name.startswith("._") or "__MACOSX" in name.parts
    return not info.is_dir() and not hidden and name.suffix.lower() == ".csv"


def _describe(
    path: Path, member: str | None, name: str, report_type: str | None, report_date: date | None
) -> LocalReport | ImportProblem:
    where = f"{path}:{member}" if member is not None else str(path)
    match = FILE_NAME.match(name)
    kind = report_type or (match.group(2) if match else None)
    day = report_date
    if day is None and match:
        try:
            day = date.fromisoformat(match.group(1))
        except ValueError:
            return ImportProblem(where, f"the date in the file name is not a date: {match.group(1)}")
    if kind is None or day is None:
        missing = " and ".join(flag for flag, value in (("--type", kind), ("--date", day)) if value is None)
        return ImportProblem(where, f"the name is not YYYY-MM-DD-<type>-<id>.csv; give {missing}")
    try:
        kind = parse_type_name(kind)
    except ValueError as exc:
        return ImportProblem(where, f"{exc}; give --type")
    try:
        with closing(_open_csv(path, member)) as stream:
            size, digest = _copy(stream, None)
    except _READ_ERRORS as exc:
        return ImportProblem(where, f"cannot read: {_reason(exc)}")
    if size == 0:
        return ImportProblem(where, "the file is empty")
    return LocalReport(path, member, kind, day, name, digest, size)


class ByteStream(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...
    def close(self) -> None: ...


def _open_csv(path: Path, member: str | None) -> ByteStream:
    """The decompressed CSV bytes of a file or of a zip member (which keeps its archive open until closed)."""
    if member is not None:
        with zipfile.ZipFile(path) as archive:
            return archive.open(member)
    with path.open("rb") as head:
        compressed = head.read(2) == _GZIP_MAGIC
    return gzip.open(path, "rb") if compressed else path.open("rb")


def _copy(stream: ByteStream, sink: IO[bytes] | None) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    while block := stream.read(_BLOCK):
        digest.update(block)
        size += len(block)
        if sink is not None:
            sink.write(block)
    return size, digest.hexdigest()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def run_import(
    settings: Settings,
    db: Database,
    plan: ImportPlan,
    *,
    force: bool = False,
    stop: threading.Event | None = None,
    reporter: Reporter | None = None,
) -> ImportOutcome:
    """Load the planned files as one ``import`` run, under the ingestion lock like any one-shot command."""
    stop = stop or threading.Event()
    if not plan.reports:
        return ImportOutcome(plan, [], None)
    with ExitStack() as stack:
        lock = IngestionLock(db)
        lock.acquire(stop=stop)
        stack.callback(lock.release)
        with db.connection() as conn:
            audit.recover_stale(conn)
            states = ledger.file_states(conn, (report.source_key for report in plan.reports))
        already = [r.label for r in plan.reports if (s := states.get(r.source_key)) and s.status == "loaded"]
        ingestor = Ingestor(settings, db, None, stop=stop, reporter=reporter)  # imports never call the API
        sources: list[ReportSource] = list(plan.reports)
        result = ingestor.run_files("import", sources, force=force)
    return ImportOutcome(plan, [] if force else already, result)
