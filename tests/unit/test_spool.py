"""Spool files: another process's clean-up never takes a spool file that is being created or used."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ingestor import spool


def test_a_clean_up_in_the_instant_a_spool_file_is_created_leaves_it_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two ingestors share SS_WORK_DIR (the system's /tmp by default): one starts a file while the other
    cleans up. Created under its final name and locked only afterwards, the new file was unlocked for an
    instant: the clean-up deleted it (the load then failed with FileNotFoundError) or held the lock its
    creator wanted (BlockingIOError)."""
    real_lock = spool._lock  # pyright: ignore[reportPrivateUsage]
    removed: list[int] = []

    def lock_after_someone_cleaned_up(fd: int) -> None:
        removed.append(spool.remove_stale(tmp_path))  # the other process, between creation and lock
        real_lock(fd)

    monkeypatch.setattr(spool, "_lock", lock_after_someone_cleaned_up)
    with spool.open_spool(tmp_path) as live:
        live.file.write(b"ip,port\n192.0.2.1,443\n")
        live.file.flush()
        assert removed == [0]
        assert live.path.name.startswith(spool.PREFIX) and live.path.suffix == spool.SUFFIX
        assert live.path.read_bytes() == b"ip,port\n192.0.2.1,443\n"
        assert spool.remove_stale(tmp_path) == 0, "held: a live ingestor's file"
    assert list(tmp_path.iterdir()) == [], "deleted once closed"


def test_a_staging_file_left_by_a_killed_process_is_removed_once_a_minute_old(tmp_path: Path) -> None:
    left = tmp_path / f"{spool.PREFIX}abc{spool.STAGING_SUFFIX}"
    fresh = tmp_path / f"{spool.PREFIX}def{spool.STAGING_SUFFIX}"
    left.write_bytes(b"")
    fresh.write_bytes(b"")
    old = time.time() - 2 * spool.STAGING_MAX_AGE
    os.utime(left, (old, old))
    assert spool.remove_stale(tmp_path) == 1
    assert not left.exists() and fresh.exists()
