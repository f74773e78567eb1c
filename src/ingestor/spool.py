"""Spool files: where a download waits to be loaded, one file at a time.

Each spool file is ``ss-spool-*.csv`` in ``SS_WORK_DIR`` (the system's temporary directory by default),
deleted once its file is loaded or failed. A process killed meanwhile (SIGKILL, the shutdown watchdog's
forced exit, the OOM killer) cannot delete its own: every spool file is held under an exclusive ``flock``
while in use, which the kernel drops with the process, so :func:`remove_stale` can tell ours that nobody
holds from those a live ingestor is writing, and removes only the former. Earlier versions named their
spool files ``ss-report-*.csv`` and did not lock them: those are removed once they are a day old.

A spool file is created under a name :func:`remove_stale` does not look at (``ss-spool-*.new``), locked,
and only then given its ``.csv`` name: another process's clean-up can never see it unlocked (it would
delete it, or hold the lock its creator is about to take). A process killed in that instant leaves an
empty ``.new`` file, removed once it is a minute old.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Generator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

PREFIX = "ss-spool-"
SUFFIX = ".csv"
UNLOCKED_PREFIX = "ss-report-"
"""The spool files of earlier versions, which held no lock."""
UNLOCKED_MAX_AGE = 86_400.0
STAGING_SUFFIX = ".new"
STAGING_MAX_AGE = 60.0
"""A spool file is under its staging name for microseconds: one older than this was left by a killed process."""


@contextmanager
def open_spool(work_dir: Path | None) -> Generator[Spool, None, None]:
    """A new spool file, locked for as long as it is open, deleted afterwards."""
    folder = str(work_dir or tempfile.gettempdir())
    fd, staging = tempfile.mkstemp(prefix=PREFIX, suffix=STAGING_SUFFIX, dir=folder)
    path = ""
    try:
        _lock(fd)  # under its staging name nobody else looks at it: the lock is ours at once
        path = _publish(staging)
        with os.fdopen(fd, "w+b") as spool:
            fd = -1
            yield Spool(spool, Path(path))
    finally:
        if fd >= 0:
            os.close(fd)
        for name in (staging, path):
            if name:
                with suppress(FileNotFoundError):
                    os.unlink(name)


def _lock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _publish(staging: str) -> str:
    """Give the locked staging file a spool name (a new one: an existing file is never replaced)."""
    base = staging[: -len(STAGING_SUFFIX)]
    for attempt in range(100):
        path = f"{base}{SUFFIX}" if attempt == 0 else f"{base}-{attempt}{SUFFIX}"
        try:
            os.link(staging, path)
        except FileExistsError:
            continue
        os.unlink(staging)
        return path
    raise FileExistsError(f"no free spool name for {staging}")


@dataclass(frozen=True)
class Spool:
    """An open spool file and its path (the file object's own ``name`` is its descriptor)."""

    file: IO[bytes]
    path: Path


def remove_stale(work_dir: Path | None) -> int:
    """Delete the spool files no live process holds (left by a killed one); how many were deleted."""
    folder = Path(work_dir or tempfile.gettempdir())
    removed = freed = 0
    try:
        candidates = sorted(folder.glob(f"{PREFIX}*{SUFFIX}"))
        old = [p for p in folder.glob(f"{UNLOCKED_PREFIX}*{SUFFIX}") if _age(p) > UNLOCKED_MAX_AGE]
        old += [p for p in folder.glob(f"{PREFIX}*{STAGING_SUFFIX}") if _age(p) > STAGING_MAX_AGE]
    except OSError:
        return 0
    for path in [*candidates, *old]:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:  # gone meanwhile, a symlink, or not ours to read
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: a live ingestor is using it
            os.close(fd)
            continue
        try:
            size = os.fstat(fd).st_size
            path.unlink()
            removed, freed = removed + 1, freed + size
        except OSError:
            pass
        finally:
            os.close(fd)
    if removed:
        log.warning("removed %d spool file(s) (%d bytes) left by a stopped process in %s", removed, freed, folder)
    return removed


def _age(path: Path) -> float:
    try:
        return time.time() - path.lstat().st_mtime
    except OSError:
        return 0.0
