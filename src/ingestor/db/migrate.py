"""The database schema: created whole on a new database, migrated forward on an existing one.

Two files describe it and must agree:

* ``schema.sql`` is the whole current schema. A database without any ingestor table gets it in one
  transaction, and every migration is recorded as applied (with its checksum), as procrastinate does:
  a new database does not replay years of history (table rewrites, index builds and drops).
* ``migrations/NNNN_name.sql`` are the forward steps from v1.0.0's schema, each run in its own
  transaction and recorded in ``ss_schema_migrations``. The first one is v1.0.0's schema with
  ``IF NOT EXISTS``: a database written by v1.0.0 (or by any earlier version of this one) follows them.

The rule for a schema change: add the next ``NNNN_name.sql`` **and** make the same change in
``schema.sql``. ``tests/integration/test_schema.py`` builds a database from ``schema.sql``, one from
v1.0.0's own DDL plus every migration, and one from an empty database plus every migration, and fails on
any difference (columns and their order, types, defaults, constraints, indexes, functions, storage
options, grants). A migration is never edited once released: its checksum is stored when it is applied,
and a database whose applied migration no longer matches the shipped file is refused.

Who writes: ``migrate`` and the ingesting commands call :func:`migrate` (which also grants the viewer
role read access); read-only commands call :func:`check_schema`, which only reads and refuses a schema
that is behind or ahead of this version.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any, LiteralString

import psycopg
from psycopg import sql

from ingestor.db.queries import trusted_sql
from ingestor.errors import DatabasePermissionError, MigrationError, SchemaVersionError
from ingestor.redaction import first_line

log = logging.getLogger(__name__)

MIGRATION_LOCK = 0x5353_4D49_4752  # "SSMIGR": one migrator at a time
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_PACKAGE = "ingestor.db"

_CREATE_TABLE: LiteralString = """
CREATE TABLE IF NOT EXISTS ss_schema_migrations (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  checksum TEXT NOT NULL,
  applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW())
"""
_RECORD: LiteralString = "INSERT INTO ss_schema_migrations (version, name, checksum) VALUES (%s, %s, %s)"
_ANY_OBJECT: LiteralString = """
SELECT EXISTS (SELECT FROM pg_class WHERE relname LIKE 'ss\\_%%' AND relnamespace = current_schema()::regnamespace)
    OR EXISTS (SELECT FROM pg_proc WHERE proname LIKE 'ss\\_%%' AND pronamespace = current_schema()::regnamespace)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


def available_migrations() -> list[Migration]:
    """The migrations shipped with the package, in order."""
    found: list[Migration] = []
    for entry in resources.files(_PACKAGE).joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda migration: migration.version)


def schema_sql() -> str:
    """The whole current schema (``schema.sql``)."""
    return resources.files(_PACKAGE).joinpath("schema.sql").read_text(encoding="utf-8")


def applied_versions(conn: psycopg.Connection[Any]) -> dict[int, str]:
    """Applied versions and their checksums; empty when the table does not exist yet."""
    exists = conn.execute("SELECT to_regclass('ss_schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    return {row[0]: row[1] for row in conn.execute("SELECT version, checksum FROM ss_schema_migrations")}


def pending_migrations(conn: psycopg.Connection[Any]) -> list[Migration]:
    """The shipped migrations this database has not applied yet (after checking those it has)."""
    available = available_migrations()
    done = applied_versions(conn)
    _verify(done, available)
    return [migration for migration in available if migration.version not in done]


def _verify(applied: dict[int, str], available: list[Migration]) -> None:
    """Refuse a database that is ahead of this version, or whose applied migrations were edited since."""
    shipped = {migration.version: migration for migration in available}
    unknown = sorted(set(applied) - set(shipped))
    if unknown:
        newest = available[-1].label if available else "none"
        raise SchemaVersionError(
            f"the database schema is newer than this version of shadowserver-ingestor (migration {unknown[-1]:04d}"
            f" applied, this version knows up to {newest}): upgrade shadowserver-ingestor"
        )
    for version, checksum in sorted(applied.items()):
        migration = shipped[version]
        if checksum != migration.checksum:
            raise MigrationError(
                f"migration {migration.label} was applied to this database from a different file than the one"
                " shipped now (checksum differs): a released migration must not be edited; restore it, and put"
                " the change in a new migration"
            )


def check_schema(conn: psycopg.Connection[Any]) -> None:
    """For read-only commands: raise :class:`SchemaVersionError` unless the schema is exactly this version's.

    Reads only; never creates, migrates or grants anything.
    """
    available = available_migrations()
    applied = applied_versions(conn)
    _verify(applied, available)
    missing = [migration for migration in available if migration.version not in applied]
    if not missing:
        return
    fix = "run `shadowserver-ingestor migrate` (or any ingesting command) first"
    if applied:
        current = max(applied)
        raise SchemaVersionError(
            f"the database schema is at migration {current:04d}, this version needs {available[-1].label}: {fix}"
        )
    row = conn.execute("SELECT to_regclass('ss_events') IS NOT NULL").fetchone()
    if row and row[0]:
        raise SchemaVersionError(f"the database has v1.0.0's schema, this version needs {available[-1].label}: {fix}")
    raise SchemaVersionError(f"database {conn.info.dbname} has no shadowserver-ingestor schema yet: {fix}")


def migrate(
    conn: psycopg.Connection[Any], viewer_role: str | None = "shadowserver_viewer", *, use_schema_file: bool = True
) -> list[Migration]:
    """Bring the schema up to date and apply the viewer grants; return the migrations recorded now.

    A database without any ``ss_*`` object gets ``schema.sql`` (every migration is then recorded as
    applied); any other one gets its pending migrations. ``use_schema_file=False`` replays the migrations
    on an empty database too (the tests compare both ways). ``conn`` must be in autocommit mode; each step
    runs in its own transaction.
    """
    if not conn.autocommit:
        raise ValueError("migrate() needs an autocommit connection")
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        pending = pending_migrations(conn)
        if pending:
            _check_create_privilege(conn)
            if use_schema_file and _is_empty(conn):
                _create(conn, pending)
            else:
                conn.execute(_CREATE_TABLE)
                for migration in pending:
                    _apply(conn, migration)
        if viewer_role:
            grant_viewer(conn, viewer_role)
        return pending
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


def _is_empty(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(_ANY_OBJECT).fetchone()
    return not (row and row[0])


def _create(conn: psycopg.Connection[Any], migrations: list[Migration]) -> None:
    log.info("creating the schema (schema.sql, up to migration %s)", migrations[-1].label)
    with _errors("creating the schema from schema.sql", conn), conn.transaction():
        conn.execute(trusted_sql(schema_sql()))
        for migration in migrations:
            conn.execute(_RECORD, (migration.version, migration.name, migration.checksum))


def _apply(conn: psycopg.Connection[Any], migration: Migration) -> None:
    log.info("applying migration %s", migration.label)
    with _errors(f"migration {migration.label}", conn), conn.transaction():
        conn.execute("SET LOCAL statement_timeout = 0")  # a migration may rewrite a large table
        conn.execute(trusted_sql(migration.sql))
        conn.execute(_RECORD, (migration.version, migration.name, migration.checksum))


@contextmanager
def _errors(step: str, conn: psycopg.Connection[Any]) -> Generator[None, None, None]:
    """Turn a failed schema step into one line; a missing privilege names the GRANT to run."""
    try:
        yield
    except psycopg.errors.InsufficientPrivilege as exc:
        raise DatabasePermissionError(_privilege_message(conn, str(exc))) from None
    except psycopg.Error as exc:
        raise MigrationError(f"{step} failed: {first_line(exc)}") from None


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
    tables: list[str] = [
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
