"""Which PostgreSQL to use, and connections to it.

``DATABASE_URL`` wins, then the ``DB_*`` parts when ``DB_HOST`` is set; with neither, the embedded server
in ``EMBEDDED_DB_DIR`` is used: this process holds a lease on it (started if needed) until ``close()``,
and the server stops when the last process using it is gone. Connections come from a small pool, in
autocommit mode: code that needs a transaction opens one explicitly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from ingestor.config import Settings
from ingestor.errors import DatabaseUnavailableError
from ingestor.redaction import redact

if TYPE_CHECKING:
    from ingestor.db.lease import ServerLease
    from ingestor.db.supervisor import ServerConfig

log = logging.getLogger(__name__)

APPLICATION_NAME = "shadowserver-ingestor"

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
    """A PostgreSQL target: its connection string, an optional embedded server and a pool."""

    def __init__(self, conninfo: str, *, embedded: ServerLease | None = None, pool_size: int = 4) -> None:
        self.conninfo = make_conninfo(conninfo, application_name=APPLICATION_NAME)
        self.display = describe_conninfo(self.conninfo)
        self.embedded = embedded
        self._pool_size = pool_size
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        """Resolve the database of ``settings``; with none configured, take a lease on the embedded server
        (starting it if no other process runs it)."""
        if not settings.uses_embedded_db:
            return cls(settings.database_conninfo())
        from ingestor.db.lease import ServerLease

        lease = ServerLease(embedded_server_config(settings))
        url = lease.acquire()
        log.info("using the embedded PostgreSQL in %s", lease.config.data_dir)
        return cls(url, embedded=lease)

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
            raise DatabaseUnavailableError(f"cannot connect to PostgreSQL {self.display}: {_first_line(exc)}") from None
        conn.execute("SET TIME ZONE 'UTC'")
        return conn

    @property
    def pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        if self._pool is None:
            self._pool = ConnectionPool(
                self.conninfo,
                min_size=1,
                max_size=self._pool_size,
                kwargs={"autocommit": True},
                configure=_configure,
                check=ConnectionPool.check_connection,  # a database restart leaves dead connections behind
                open=False,
                name="ingestor",
            )
            self._pool.open(wait=False)
        return self._pool

    @contextmanager
    def connection(self, timeout: float = 30.0) -> Iterator[psycopg.Connection[Any]]:
        """Borrow a pooled autocommit connection."""
        try:
            with self.pool.connection(timeout=timeout) as conn:
                yield conn
        except PoolTimeout:
            raise DatabaseUnavailableError(f"cannot connect to PostgreSQL {self.display} (timed out)") from None
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailableError(f"PostgreSQL {self.display} failed: {_first_line(exc)}") from None

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


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SET TIME ZONE 'UTC'")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return redact(text[0] if text else type(exc).__name__)
