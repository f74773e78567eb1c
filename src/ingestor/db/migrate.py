"""Forward-only schema migrations, applied at start under an advisory lock.

Migrations are the numbered ``migrations/NNNN_name.sql`` files. Each runs in its own transaction and is
recorded in ``ss_schema_migrations``. The first one is v1.0.0's schema with ``IF NOT EXISTS``, so a
database written by v1.0.0 and an empty one converge on the same schema.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, LiteralString

import psycopg
from psycopg import sql

from ingestor.errors import DatabasePermissionError, MigrationError

log = logging.getLogger(__name__)

MIGRATION_LOCK = 0x5353_4D49_4752  # "SSMIGR": one migrator at a time
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_TABLE: LiteralString = """
CREATE TABLE IF NOT EXISTS ss_schema_migrations (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  checksum TEXT NOT NULL,
  applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW())
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def available_migrations() -> list[Migration]:
    """The migrations shipped with the package, in order."""
    found = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda migration: migration.version)


def applied_versions(conn: psycopg.Connection[Any]) -> dict[int, str]:
    """Applied versions and their checksums; empty when the table does not exist yet."""
    exists = conn.execute("SELECT to_regclass('ss_schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    return {row[0]: row[1] for row in conn.execute("SELECT version, checksum FROM ss_schema_migrations")}


def pending_migrations(conn: psycopg.Connection[Any]) -> list[Migration]:
    done = applied_versions(conn)
    return [migration for migration in available_migrations() if migration.version not in done]


def migrate(conn: psycopg.Connection[Any], viewer_role: str | None = "shadowserver_viewer") -> list[Migration]:
    """Bring the schema up to date and apply the viewer grants; return the migrations applied.

    ``conn`` must be in autocommit mode; each migration runs in its own transaction.
    """
    if not conn.autocommit:
        raise ValueError("migrate() needs an autocommit connection")
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        pending = pending_migrations(conn)
        if pending:
            _check_create_privilege(conn)
            conn.execute(_CREATE_TABLE)
        for migration in pending:
            log.info("applying migration %04d_%s", migration.version, migration.name)
            try:
                with conn.transaction():
                    conn.execute("SET LOCAL statement_timeout = 0")  # a migration may rewrite a large table
                    conn.execute(migration.sql)
                    conn.execute(
                        "INSERT INTO ss_schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
            except psycopg.errors.InsufficientPrivilege as exc:
                raise DatabasePermissionError(_privilege_message(conn, str(exc))) from None
            except psycopg.Error as exc:
                raise MigrationError(f"migration {migration.version:04d}_{migration.name} failed: {exc}") from None
        if viewer_role:
            grant_viewer(conn, viewer_role)
        return pending
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


def _check_create_privilege(conn: psycopg.Connection[Any]) -> None:
    row = conn.execute(
        "SELECT has_schema_privilege(current_user, current_schema(), 'CREATE'), current_user, current_schema()"
    ).fetchone()
    if row and not row[0]:
        raise DatabasePermissionError(_privilege_message(conn, f"role {row[1]} cannot create tables in {row[2]}"))


def _privilege_message(conn: psycopg.Connection[Any], detail: str) -> str:
    user = conn.info.user
    return (
        f"{detail}. Since PostgreSQL 15 'GRANT ALL ON DATABASE' no longer allows creating tables in schema "
        f"public: run, as the database owner, GRANT CREATE, USAGE ON SCHEMA public TO {user}; "
        "(or make the ingestor's role the owner of the database). See the README, 'Database setup'."
    )


def grant_viewer(conn: psycopg.Connection[Any], role: str) -> bool:
    """Grant the read-only role what IRIS Data Explorer needs, if the role exists; True if granted."""
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    if not exists:
        log.debug("viewer role %s does not exist; no grants applied", role)
        return False
    ident = sql.Identifier(role)
    tables = [
        row[0]
        for row in conn.execute(
            "SELECT c.relname FROM pg_class c WHERE c.relkind IN ('r', 'p') AND c.relname LIKE 'ss\\_%%'"
            " AND c.relnamespace = current_schema()::regnamespace"
        )
    ]
    statements = [
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(conn.info.dbname), ident),
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(_current_schema(conn)), ident),
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
            sql.Identifier(_current_schema(conn)), ident
        ),
    ]
    statements += [sql.SQL("GRANT SELECT ON {} TO {}").format(sql.Identifier(t), ident) for t in tables]
    try:
        with conn.transaction():
            for statement in statements:
                conn.execute(statement)
    except psycopg.errors.InsufficientPrivilege as exc:
        log.warning("could not grant %s read access: %s", role, str(exc).strip())
        return False
    return True


def _current_schema(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT current_schema()").fetchone()
    return str(row[0]) if row else "public"
