"""The parse worker process: what it inherits from the service."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ingestor.parse.worker import ParseWorker


def test_the_worker_inherits_no_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://ingestor:db-pass-4711@db.example/shadowserver_db")
    monkeypatch.setenv("DB_PASSWORD", "db-pass-4711")
    monkeypatch.setenv("SS_API_KEY", "api-key-4711")
    monkeypatch.setenv("SS_API_SECRET", "api-secret-4711")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-4711")
    worker = ParseWorker()
    try:
        # between fork and exec the child still holds our environment: read it once it runs the worker
        deadline = time.monotonic() + 30
        while b"ingestor.parse.worker" not in Path(f"/proc/{worker.pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.01)
        environ = Path(f"/proc/{worker.pid}/environ").read_bytes().split(b"\0")
    finally:
        worker.close()
    assert not [entry for entry in environ if b"4711" in entry]
    names = {entry.split(b"=", 1)[0] for entry in environ if entry}
    assert b"PATH" in names and not names & {b"DATABASE_URL", b"SS_API_SECRET", b"DB_PASSWORD"}


def test_a_file_the_worker_cannot_read_fails_with_the_workers_own_reason(tmp_path: Path) -> None:
    """The worker runs as ``python -m``: what it pickles must be resolvable by the loader."""
    from ingestor.catalog import load_catalog
    from ingestor.errors import ReportFileError

    worker = ParseWorker()
    try:
        with pytest.raises(ReportFileError, match="cannot read the file: FileNotFoundError"):
            list(
                worker.parse(tmp_path / "missing.csv", load_catalog().get("scan_ssl"), "scan_ssl\t2026-11-20\t1\t", 100)
            )
    finally:
        worker.close()
