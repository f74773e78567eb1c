"""Spool files: where a download waits to be loaded, one file at a time.

Each spool file is ``ss-spool-*.csv`` in ``SS_WORK_DIR`` (the system's temporary directory by default),
deleted once its file is loaded or failed. A process killed meanwhile (SIGKILL, the shutdown watchdog's
forced exit, the OOM killer) cannot delete its own: every spool file is held under an exclusive ``flock``
while in use, which the kernel drops with the process, so :func:`remove_stale` can tell ours that nobody
holds from those a live ingestor is writing, and removes only the former. Earlier versions named their
spool files ``ss-report-*.csv`` and did not lock them: those are removed once they are a day old.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

PREFIX = "ss-spool-"
SUFFIX = ".csv"
UNLOCKED_PREFIX = "ss-report-"
"""The spool files of earlier versions, which held no lock."""
UNLOCKED_MAX_AGE = 86_400.0


@contextmanager
def open_spool(work_dir: Path | None) -> Generator[IO[bytes], None, None]:
    """A new spool file, locked for as long as it is open, deleted afterwards."""
    with tempfile.NamedTemporaryFile(prefix=PREFIX, suffix=SUFFIX, dir=work_dir) as spool:
        fcntl.flock(spool.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else can hold it
        yield spool


def remove_stale(work_dir: Path | None) -> int:
    """Delete the spool files no live process holds (left by a killed one); how many were deleted."""
    folder = Path(work_dir or tempfile.gettempdir())
    removed = freed = 0
    try:
        candidates = sorted(folder.glob(f"{PREFIX}*{SUFFIX}"))
        old = [p for p in folder.glob(f"{UNLOCKED_PREFIX}*{SUFFIX}") if _age(p) > UNLOCKED_MAX_AGE]
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
