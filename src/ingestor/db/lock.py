"""The ingestion lock: one writer per database.

A session-level advisory lock held on a dedicated connection for as long as the process ingests. Two
instances pointed at one database therefore never load files concurrently: the second one waits (the
service) or stops with a clear message (one-shot commands).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg

from ingestor.db.connect import Database
from ingestor.errors import DatabaseUnavailableError, InstanceLockedError

log = logging.getLogger(__name__)

INGEST_LOCK = 0x5353_494E_4745  # "SSINGE"


class IngestionLock:
    """Hold :data:`INGEST_LOCK` on a connection of its own."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: psycopg.Connection[Any] | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def try_acquire(self) -> bool:
        """Take the lock if it is free; True when held afterwards."""
        if self.held:
            return True
        conn = self.db.connect()
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (INGEST_LOCK,)).fetchone()
        if row and row[0]:
            self._conn = conn
            return True
        conn.close()
        return False

    def acquire(self, wait: float = 0.0, stop: threading.Event | None = None) -> None:
        """Take the lock, retrying for up to ``wait`` seconds; raise :class:`InstanceLockedError`."""
        stop = stop or threading.Event()
        remaining = wait
        while not self.try_acquire():
            if remaining <= 0 or stop.is_set():
                raise InstanceLockedError(
                    f"another ingestor instance is ingesting into {self.db.display} ({self.holder() or 'unknown'});"
                    " only one may write at a time"
                )
            stop.wait(min(2.0, remaining))
            remaining -= 2.0

    def still_held(self) -> bool:
        """Check that the lock's connection is alive (a database restart drops the lock)."""
        if not self.held or self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            self.release()
            return False

    def holder(self) -> str | None:
        """Who holds the lock: backend pid, client address and application name, when visible."""
        try:
            with self.db.connect() as conn:
                row = conn.execute(
                    "SELECT a.pid, COALESCE(host(a.client_addr), 'local'), a.application_name, a.backend_start"
                    " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                    " WHERE l.locktype = 'advisory' AND l.granted"
                    " AND ((l.classid::bigint << 32) | l.objid::bigint) = %s",
                    (INGEST_LOCK,),
                ).fetchone()
        except (psycopg.Error, DatabaseUnavailableError):
            return None
        if not row:
            return None
        return f"backend pid {row[0]} from {row[1]}, {row[2] or 'unnamed'}, since {row[3]:%Y-%m-%d %H:%M:%S %Z}"

    def release(self) -> None:
        if self._conn is not None:
            try:
                if not self._conn.closed:
                    self._conn.execute("SELECT pg_advisory_unlock(%s)", (INGEST_LOCK,))
            except psycopg.Error:
                pass
            finally:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> IngestionLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
