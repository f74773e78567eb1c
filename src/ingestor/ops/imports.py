"""Local report files (e-mail deliveries) as pipeline sources: plain CSV, gzip, and zip archives.

Paths may be files or directories (searched recursively for ``*.csv``, ``*.gz`` and ``*.zip``). A file's
compression is told by its first bytes, not its name; a zip contributes every ``.csv`` member. The report
type and date come from the (inner) file name, ``YYYY-MM-DD-<type>-<identifier>.csv``, unless given.

Only regular files are read. Inside a directory, symbolic links are not followed (a link named like a
report could point at ``/etc/shadow``); a link named on the command line is followed, to a regular file
only. FIFOs, devices, sockets and link loops are reported and skipped: files are opened non-blocking and
checked after opening (``fstat``), so nothing blocks and nothing can be swapped in between the check and
the read. Sizes and compression ratios are bounded (:class:`~ingestor.limits.FileLimits`): a zip member
by its declared sizes (which ``zipfile`` enforces), a gzip file while it is read.

Each file is read once while planning, to compute the SHA-256 of its CSV content: that is its ledger
key (``file:<sha256>``), so a file already loaded, plain or compressed, is skipped unless forced. A file
that cannot be read or named becomes an :class:`ImportProblem`; the others go on.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import logging
import os
import stat
import threading
import time
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO, Protocol

from ingestor import audit, ledger
from ingestor.api.client import FILE_NAME, DownloadResult
from ingestor.config import Settings
from ingestor.db.connect import Database
from ingestor.db.lock import IngestionLock
from ingestor.errors import FileTooLargeError, ReportFileError
from ingestor.limits import RATIO_FLOOR, FileLimits, InflatingReader, SpoolWriter
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
_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}


@dataclass(frozen=True)
class ImportProblem:
    """A path that cannot be imported, and why (one line)."""

    path: str
    message: str
    unnamed: bool = False
    """The file's name does not say its report type and date (and no --type/--date said it)."""

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
    follow: bool = False
    """Named on the command line as a symbolic link: follow it (to a regular file only)."""
    limits: FileLimits = field(default_factory=FileLimits, repr=False)

    @property
    def label(self) -> str:
        return f"{self.path.name}:{self.file_name}" if self.member is not None else self.path.name

    @property
    def source_key(self) -> str:
        return ledger.content_source_key(self.sha256)

    def open(self) -> ByteStream:
        """The CSV bytes, decompressed."""
        return _open_csv(self.path, self.member, follow=self.follow, limits=self.limits, label=self.label)

    def fetch(self, spool: IO[bytes]) -> DownloadResult:
        """Copy the CSV content into ``spool``; fail if it changed since it was planned."""
        started = time.monotonic()
        try:
            writer = SpoolWriter(spool, self.limits, self.label)
            writer.reserve(self.size)
            with closing(self.open()) as stream:
                size, digest = _copy(stream, writer, self.limits, self.label)
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
    skipped: list[ImportProblem] = field(default_factory=list)
    """Files found in a directory whose names are not report names: not reports, or to be named with
    --type and --date (not failures)."""

    @property
    def misnamed(self) -> list[ImportProblem]:
        """Files named on the command line whose names say neither type nor date: a usage error."""
        return [problem for problem in self.problems if problem.unnamed]


@dataclass
class ImportOutcome:
    plan: ImportPlan
    already_loaded: list[str]
    result: RunResult | None


@dataclass(frozen=True)
class FoundFile:
    """A regular file to read; ``follow`` when it is a symbolic link named on the command line."""

    path: Path
    follow: bool = False
    named: bool = False
    """Named on the command line (not found in a directory)."""


def check_named_path(path: Path) -> ImportProblem | None:
    """A path named on the command line that cannot be imported at all (missing, unreadable), else None.

    Checked before anything starts: such a path is a usage error.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ENOENT and os.path.lexists(path):
            return ImportProblem(str(path), "a symbolic link to nothing (its target does not exist)")
        if exc.errno == errno.ENOENT:
            return ImportProblem(str(path), "no such file or directory")
        if exc.errno == errno.EACCES:
            return ImportProblem(str(path), "permission denied: this user cannot reach it")
        return None  # a link loop and the like: reported and skipped with the other files
    what = "directory" if stat.S_ISDIR(mode) else "file"
    try:  # try it rather than ask os.access: root may read what its mode forbids, yet not everything
        if stat.S_ISDIR(mode):
            with os.scandir(path):
                pass
        elif stat.S_ISREG(mode):
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)))
    except PermissionError:
        return ImportProblem(str(path), f"permission denied: this user cannot read the {what}")
    except OSError:
        return None  # reported and skipped with the other files (see find_files)
    return None


def find_files(paths: Iterable[Path]) -> Iterator[FoundFile | ImportProblem]:
    """Named files as given (a symbolic link to a regular file is followed); directories walked
    recursively (sorted) for regular files with ``SUFFIXES``, symbolic links inside them not followed."""
    for path in paths:
        try:
            mode = os.lstat(path).st_mode
        except OSError as exc:
            yield ImportProblem(str(path), "no such file or directory" if exc.errno == errno.ENOENT else _reason(exc))
            continue
        if stat.S_ISLNK(mode):
            try:
                target = os.stat(path).st_mode
            except OSError as exc:
                yield ImportProblem(str(path), _link_problem(exc))
                continue
            if stat.S_ISREG(target):
                yield FoundFile(path, follow=True, named=True)
            else:
                yield ImportProblem(str(path), f"a symbolic link to {_kind(target)}: not followed (only to a file)")
        elif stat.S_ISDIR(mode):
            found: list[Path] = []
            problems: list[ImportProblem] = []
            _walk(path, found, problems)
            if not found and not problems:
                yield ImportProblem(str(path), "no .csv, .gz or .zip file in this directory")
            yield from problems
            yield from (FoundFile(p) for p in sorted(found))
        elif stat.S_ISREG(mode):
            yield FoundFile(path, named=True)
        else:
            yield ImportProblem(str(path), f"{_kind(mode)}, not a regular file: skipped")


def _walk(directory: Path, found: list[Path], problems: list[ImportProblem]) -> None:
    """Regular files with ``SUFFIXES`` below ``directory``; links and special files become problems."""
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError as exc:
        problems.append(ImportProblem(str(directory), f"cannot read the directory: {_reason(exc)}"))
        return
    for entry in entries:
        path = Path(entry.path)
        try:
            mode = entry.stat(follow_symlinks=False).st_mode
        except OSError as exc:
            problems.append(ImportProblem(str(path), _reason(exc)))
            continue
        if stat.S_ISDIR(mode):
            _walk(path, found, problems)
        elif stat.S_ISLNK(mode):
            if path.suffix.lower() in SUFFIXES or entry.is_dir():
                problems.append(
                    ImportProblem(str(path), "a symbolic link inside a directory: not followed (name it to import it)")
                )
        elif path.suffix.lower() in SUFFIXES:
            if stat.S_ISREG(mode):
                found.append(path)
            else:
                problems.append(ImportProblem(str(path), f"{_kind(mode)}, not a regular file: skipped"))


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def _link_problem(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop: skipped"
    if exc.errno == errno.ENOENT:
        return "a symbolic link to nothing (its target does not exist)"
    return _reason(exc)


def plan_import(
    paths: Sequence[Path],
    *,
    report_type: str | None = None,
    report_date: date | None = None,
    limits: FileLimits | None = None,
) -> ImportPlan:
    """Read every file once (SHA-256 of its CSV content), name it, and collect the problems."""
    plan = ImportPlan()
    limits = limits or FileLimits()
    seen: dict[str, str] = {}
    for found in find_files(paths):
        if isinstance(found, ImportProblem):
            plan.problems.append(found)
            continue
        for item in _csv_members(found, report_type, report_date, limits):
            if isinstance(item, ImportProblem) and item.unnamed and not found.named:
                plan.skipped.append(item)
            elif isinstance(item, ImportProblem):
                plan.problems.append(item)
            elif item.sha256 in seen:
                plan.duplicates.append(f"{item.label} (same content as {seen[item.sha256]})")
            else:
                seen[item.sha256] = item.label
                plan.reports.append(item)
    return plan


def _csv_members(
    found: FoundFile, report_type: str | None, report_date: date | None, limits: FileLimits
) -> Iterator[LocalReport | ImportProblem]:
    path = found.path
    try:
        with closing(open_regular(path, follow=found.follow)) as head:
            magic = head.read(4)
            if magic.startswith(_ZIP_MAGIC):
                head.seek(0)
                with zipfile.ZipFile(head) as archive:
                    members = [info for info in archive.infolist() if _is_csv_member(info)]
                if not members:
                    yield ImportProblem(str(path), "the zip archive holds no .csv file")
                for info in members:
                    where = f"{path}:{info.filename}"
                    problem = _member_problem(info, limits, where)
                    if problem is not None:
                        yield problem
                        continue
                    name = PurePosixPath(info.filename).name
                    yield _describe(found, info.filename, name, report_type, report_date, limits)
                return
        gzipped = magic.startswith(_GZIP_MAGIC) and path.name.lower().endswith(".gz")
        inner = path.name[:-3] if gzipped else path.name
        yield _describe(found, None, inner, report_type, report_date, limits)
    except _READ_ERRORS as exc:
        yield ImportProblem(str(path), f"cannot read: {_reason(exc)}")


def _member_problem(info: zipfile.ZipInfo, limits: FileLimits, where: str) -> ImportProblem | None:
    """A zip member over the limits, judged by its declared sizes (``zipfile`` reads no more than those)."""
    try:
        limits.check_size(info.file_size, where)
        if info.file_size > RATIO_FLOOR:
            limits.check_ratio(info.file_size, info.compress_size, where)
    except FileTooLargeError as exc:
        return ImportProblem(where, str(exc).removeprefix(f"{where}: "))
    return None


def _is_csv_member(info: zipfile.ZipInfo) -> bool:
    name = PurePosixPath(info.filename)
    hidden = name.name.startswith("._") or "__MACOSX" in name.parts
    return not info.is_dir() and not hidden and name.suffix.lower() == ".csv"


def _describe(
    found: FoundFile,
    member: str | None,
    name: str,
    report_type: str | None,
    report_date: date | None,
    limits: FileLimits,
) -> LocalReport | ImportProblem:
    path = found.path
    where = f"{path}:{member}" if member is not None else str(path)
    match = FILE_NAME.match(name)
    kind = report_type or (match.group(2) if match else None)
    day = report_date
    if day is None and match:
        try:
            day = date.fromisoformat(match.group(1))
        except ValueError:
            return ImportProblem(where, f"the date in the file name is not a date: {match.group(1)}", unnamed=True)
    if kind is None or day is None:
        missing = " and ".join(flag for flag, value in (("--type", kind), ("--date", day)) if value is None)
        return ImportProblem(where, f"the name is not YYYY-MM-DD-<type>-<id>.csv; give {missing}", unnamed=True)
    try:
        kind = parse_type_name(kind)
    except ValueError as exc:
        return ImportProblem(where, f"{exc}; give --type", unnamed=True)
    try:
        with closing(_open_csv(path, member, follow=found.follow, limits=limits, label=where)) as stream:
            size, digest = _copy(stream, None, limits, where)
    except FileTooLargeError as exc:
        return ImportProblem(where, str(exc).removeprefix(f"{where}: "))
    except _READ_ERRORS as exc:
        return ImportProblem(where, f"cannot read: {_reason(exc)}")
    if size == 0:
        return ImportProblem(where, "the file is empty")
    return LocalReport(path, member, kind, day, name, digest, size, follow=found.follow, limits=limits)


class ByteStream(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...
    def close(self) -> None: ...


def open_regular(path: Path, *, follow: bool = False) -> BinaryIO:
    """Open a regular file for reading; never blocks (a FIFO), never reads a device or (unless
    ``follow``) through a symbolic link: the check is made on the opened file, not on its name."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "a symbolic link loop" if follow else "a symbolic link (not followed)") from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"{_kind(mode)}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class _ZipMember:
    """A member of a zip archive opened from a file object: closing it closes the archive and the file."""

    def __init__(self, raw: BinaryIO, member: str) -> None:
        self._raw = raw
        self._archive = zipfile.ZipFile(raw)
        self._member = self._archive.open(member)

    def read(self, size: int = -1, /) -> bytes:
        return self._member.read(size)

    def close(self) -> None:
        self._member.close()
        self._archive.close()
        self._raw.close()


def _open_csv(path: Path, member: str | None, *, follow: bool, limits: FileLimits, label: str) -> ByteStream:
    """The decompressed CSV bytes of a file or of a zip member."""
    raw = open_regular(path, follow=follow)
    try:
        if member is not None:
            return _ZipMember(raw, member)
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        return InflatingReader(raw, limits, label) if compressed else raw
    except BaseException:
        raw.close()
        raise


def _copy(stream: ByteStream, sink: SpoolWriter | None, limits: FileLimits, label: str) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    while block := stream.read(_BLOCK):
        size += len(block)
        limits.check_size(size, label)
        digest.update(block)
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
