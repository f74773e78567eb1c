"""One schema, three ways to reach it: schema.sql on a new database, every migration on an empty one, and
every migration on a database that v1.0.0's own DDL created. All three must be identical, object by object;
the stored checksums refuse an applied migration whose file was edited, and a schema this version does not
know."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import psycopg
import pytest
from psycopg import sql

from ingestor.config import load_settings
from ingestor.db import partitions
from ingestor.db.connect import Database
from ingestor.db.migrate import available_migrations, check_schema, migrate
from ingestor.errors import MigrationError, SchemaVersionError
from ingestor.ops.partitioning import convert

from fixtures.v1 import V1_SCHEMA, v1_insert_file

_RELATIONS = """
SELECT c.relname, c.relkind::text, c.reloptions, c.relispartition, pg_get_partkeydef(c.oid),
       pg_get_expr(c.relpartbound, c.oid), obj_description(c.oid, 'pg_class'), c.relacl::text[]
FROM pg_class c
WHERE c.relnamespace = current_schema()::regnamespace AND c.relname LIKE 'ss\\_%'
ORDER BY c.relname
"""
_COLUMNS = """
SELECT c.relname, array_agg(ROW(a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                                pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated, co.collname,
                                col_description(c.oid, a.attnum), a.attacl::text[])::text ORDER BY a.attnum)
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 0
WHERE c.relnamespace = current_schema()::regnamespace AND c.relname LIKE 'ss\\_%' AND c.relkind IN ('r', 'p', 'v', 'm')
GROUP BY c.relname
ORDER BY c.relname
"""
_CONSTRAINTS = """
SELECT conrelid::regclass::text, conname, contype::text, pg_get_constraintdef(oid), condeferrable, condeferred
FROM pg_constraint
WHERE connamespace = current_schema()::regnamespace AND conrelid <> 0
ORDER BY 1, 2
"""
_INDEXES = "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 2"
_FUNCTIONS = """
SELECT p.proname, pg_get_functiondef(p.oid), p.proacl::text[]
FROM pg_proc p WHERE p.pronamespace = current_schema()::regnamespace AND p.proname LIKE 'ss\\_%'
ORDER BY 1, 2
"""
_SEQUENCES = """
SELECT s.sequencename, s.data_type::text, s.start_value, s.increment_by, s.min_value, s.max_value, s.cache_size,
       s.cycle, (SELECT d.refobjid::regclass::text || '.' || a.attname
                 FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                 WHERE d.objid = (quote_ident(s.schemaname) || '.' || quote_ident(s.sequencename))::regclass
                   AND d.deptype IN ('a', 'i'))
FROM pg_sequences s WHERE s.schemaname = current_schema() ORDER BY 1
"""
_TRIGGERS = """
SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger
WHERE NOT tgisinternal AND tgrelid::regclass::text LIKE 'ss\\_%' ORDER BY 1, 2
"""
_DEFAULT_ACL = """
SELECT defaclrole::regrole::text, defaclobjtype::text, defaclacl::text[] FROM pg_default_acl
WHERE defaclnamespace = current_schema()::regnamespace ORDER BY 1, 2
"""
_SCHEMA_ACL = "SELECT nspacl::text[] FROM pg_namespace WHERE nspname = current_schema()"
_DATABASE_ACL = "SELECT datacl::text[] FROM pg_database WHERE datname = current_database()"


def describe(conn: psycopg.Connection[Any]) -> dict[str, list[tuple[Any, ...]]]:
    """Everything about the ingestor's objects that a schema change can alter; no data, no object ids."""
    queries = {
        "relations": _RELATIONS,
        "columns": _COLUMNS,
        "constraints": _CONSTRAINTS,
        "indexes": _INDEXES,
        "functions": _FUNCTIONS,
        "sequences": _SEQUENCES,
        "triggers": _TRIGGERS,
        "default privileges": _DEFAULT_ACL,
        "schema privileges": _SCHEMA_ACL,
        "database privileges": _DATABASE_ACL,
    }
    return {name: conn.execute(query).fetchall() for name, query in queries.items()}  # type: ignore[arg-type]


@pytest.fixture
def viewer(make_db_url: Callable[..., str]) -> Iterator[tuple[str, list[str]]]:
    """A read-only role for the grants, and the list of databases it was granted on (cleaned up after)."""
    role = f"ssi_schema_viewer_{uuid.uuid4().hex[:8]}"
    granted: list[str] = []
    admin = make_db_url()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
    try:
        yield role, granted
    finally:
        for url in [*granted, admin]:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_schema_sql_and_the_migrations_from_v1_and_from_nothing_build_the_same_database(
    make_db_url: Callable[..., str], viewer: tuple[str, list[str]]
) -> None:
    role, granted = viewer
    built: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
    for way in ("schema.sql", "migrations from empty", "migrations from v1.0.0"):
        url = make_db_url()
        granted.append(url)
        with psycopg.connect(url, autocommit=True) as conn:
            if way == "migrations from v1.0.0":
                conn.execute(V1_SCHEMA)  # type: ignore[arg-type]
                row = b'"timestamp","ip","port"\n"2026-11-19 01:00:00Z","192.0.2.1",443\n'
                v1_insert_file(conn, "scan_ssl", date(2026, 11, 19), row)
            applied = migrate(conn, viewer_role=role, use_schema_file=way == "schema.sql")
            assert [m.version for m in applied] == [m.version for m in available_migrations()], way
            recorded = conn.execute("SELECT version, checksum FROM ss_schema_migrations ORDER BY 1").fetchall()
            assert recorded == [(m.version, m.checksum) for m in available_migrations()], way
            assert migrate(conn, viewer_role=role) == [], way
            if way == "migrations from v1.0.0":  # a table holding events is partitioned by the command
                settings = load_settings({"DATABASE_URL": url, "VIEWER_ROLE": role}, env_file=None)
                with Database(url) as db:
                    assert convert(db, settings).rows == 1
                assert conn.execute("SELECT count(*) FROM ss_events").fetchone() == (1,)
            for partition in partitions.partitions(conn):  # made by code from ss_events, per report date
                conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(partition.name)))
            check_schema(conn)
            built[way] = describe(conn)
    reference = built["schema.sql"]
    assert reference["columns"] and reference["indexes"] and reference["functions"]
    assert any(role in str(acl) for *_, acl in reference["relations"]), "the viewer's grants are compared too"
    for way, description in built.items():
        for part, rows in reference.items():
            assert description[part] == rows, f"{part} differ between schema.sql and {way}"


def test_a_new_database_gets_schema_sql_in_one_step(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        applied = migrate(conn, viewer_role=None)
        times = conn.execute("SELECT count(DISTINCT applied_at) FROM ss_schema_migrations").fetchone()
    assert len(applied) == len(available_migrations())
    assert times == (1,), "one transaction recorded every migration"


def _break(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)  # type: ignore[arg-type]


def test_an_applied_migration_whose_file_changed_is_refused_by_name(migrated_db_url: str) -> None:
    _break(migrated_db_url, "UPDATE ss_schema_migrations SET checksum = 'edited' WHERE version = 3")
    with psycopg.connect(migrated_db_url, autocommit=True) as conn:
        edited = r"^migration 0003_findings was applied .* \(checksum differs\)"
        with pytest.raises(MigrationError, match=edited) as caught:
            migrate(conn, viewer_role=None)
        assert "\n" not in str(caught.value)
        with pytest.raises(MigrationError, match="0003_findings"):
            check_schema(conn)


def test_a_schema_newer_than_this_version_is_refused(migrated_db_url: str) -> None:
    _break(migrated_db_url, "INSERT INTO ss_schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')")
    with psycopg.connect(migrated_db_url, autocommit=True) as conn:
        with pytest.raises(SchemaVersionError, match=r"newer than this version.*9999.*upgrade"):
            migrate(conn, viewer_role=None)
        with pytest.raises(SchemaVersionError, match="newer"):
            check_schema(conn)


def test_check_schema_names_what_is_missing_and_changes_nothing(make_db_url: Callable[..., str]) -> None:
    empty, v1, behind = make_db_url(), make_db_url(), make_db_url()
    _break(v1, V1_SCHEMA)
    with psycopg.connect(behind, autocommit=True) as conn:
        migrate(conn, viewer_role=None)
        conn.execute("DELETE FROM ss_schema_migrations WHERE version > 3")
    latest = available_migrations()[-1].label
    expected = {
        empty: "has no shadowserver-ingestor schema yet",
        v1: f"has v1.0.0's schema, this version needs {latest}",
        behind: f"is at migration 0003, this version needs {latest}",
    }
    for url, message in expected.items():
        with psycopg.connect(url, autocommit=True) as conn:
            before = describe(conn)
            with pytest.raises(SchemaVersionError, match="run `shadowserver-ingestor migrate`") as caught:
                check_schema(conn)
            assert message in str(caught.value)
            assert describe(conn) == before
