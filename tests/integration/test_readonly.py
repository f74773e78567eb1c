"""Read-only commands (``search``, ``status``, ``types``, ``new``) read: they never migrate, never grant, and
work under a role that may only SELECT; a schema they cannot read is one line naming the fix."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ingestor.cli.runtime import runtime
from ingestor.db.migrate import migrate
from ingestor.errors import DatabasePermissionError

from fixtures.cli import invoke, query
from fixtures.pg import PgServer
from fixtures.v1 import V1_SCHEMA

REPORTS = Path(__file__).resolve().parents[1] / "data" / "reports"
SCAN = REPORTS / "2026-11-19-scan_ssl-example-geo.csv"
SINKHOLE = REPORTS / "2026-11-19-event4_sinkhole-example-asn.csv"
READ_ONLY_COMMANDS = (
    ("search", "--since", "2026-11-01", "--format", "json"),
    ("status", "--json"),
    ("types", "--seen", "--json"),
    ("new", "--since", "2026-11-19", "--until", "2026-11-19", "--format", "json"),
)

_STATE = """
SELECT (SELECT array_agg(ROW(version, checksum, applied_at)::text ORDER BY version) FROM ss_schema_migrations),
       (SELECT array_agg(ROW(relname, relacl)::text ORDER BY relname) FROM pg_class WHERE relname LIKE 'ss\\_%%'),
       (SELECT array_agg(defaclacl::text) FROM pg_default_acl),
       (SELECT count(*) FROM ss_ingestion_log), (SELECT count(*) FROM ss_events)
"""


def state(url: str) -> list[tuple[Any, ...]]:
    """What a migration or a grant would change: applied migrations, table and default privileges, counts."""
    return query(url, _STATE)


@pytest.fixture
def loaded(migrated_db_url: str) -> str:
    """A current database holding two report files."""
    result = invoke(migrated_db_url, "import", str(SCAN), str(SINKHOLE))
    assert result.exit_code == 0, result.output
    return migrated_db_url


@pytest.fixture
def reader(loaded: str, pg_server: PgServer) -> Iterator[tuple[str, str]]:
    """A role with exactly what IRIS Data Explorer's viewer gets (CONNECT, USAGE, SELECT on the ss_* tables),
    and the database's URL for it."""
    role = f"ssi_reader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(loaded, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        migrate(conn, viewer_role=role)
    try:
        yield role, make_conninfo(loaded, user=role)
    finally:
        with psycopg.connect(loaded, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_read_only_commands_work_under_a_role_that_may_only_select(reader: tuple[str, str], loaded: str) -> None:
    role, url = reader
    before = state(loaded)
    for command in READ_ONLY_COMMANDS:
        # VIEWER_ROLE names an existing role: a command that granted would try (and warn, as before the fix).
        result = invoke(url, *command, env={"VIEWER_ROLE": role})
        assert result.exit_code == 0, f"{command[0]}: {result.output}"
        assert "could not grant" not in result.output and "warning" not in result.output.lower(), command[0]
        assert result.stdout.strip(), f"{command[0]} printed nothing"
    assert state(loaded) == before
    searched = json.loads(invoke(url, "search", "--ip", "198.51.100.7", "--format", "json").stdout)
    assert [row["ip"] for row in searched] == ["198.51.100.7"]


def test_read_only_commands_never_grant_or_migrate_even_when_they_could(loaded: str) -> None:
    """As the owner, with a viewer whose SELECT on one table was revoked: the revocation stays."""
    role = f"ssi_viewer_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(loaded, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
        migrate(conn, viewer_role=role)
        conn.execute(sql.SQL("REVOKE SELECT ON ss_findings FROM {}").format(sql.Identifier(role)))
    try:
        before = state(loaded)
        for command in READ_ONLY_COMMANDS:
            result = invoke(loaded, *command, env={"VIEWER_ROLE": role})
            assert result.exit_code == 0, f"{command[0]}: {result.output}"
        assert state(loaded) == before
        grant = query(loaded, "SELECT has_table_privilege(%s, 'ss_findings', 'SELECT')", role)
        assert grant == [(False,)]
        assert invoke(loaded, "migrate", env={"VIEWER_ROLE": role}).exit_code == 0  # migrate does grant
        assert query(loaded, "SELECT has_table_privilege(%s, 'ss_findings', 'SELECT')", role) == [(True,)]
    finally:
        with psycopg.connect(loaded, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_the_sessions_of_read_only_commands_refuse_writes(loaded: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ingestor.cli.runtime.configure_logging", lambda *args, **kwargs: None)
    with runtime(need_db=True, read_only=True, overrides={"DATABASE_URL": loaded}) as rt:
        db = rt.require_db()
        with pytest.raises(DatabasePermissionError, match="read-only transaction"), db.connection() as conn:
            conn.execute("DELETE FROM ss_events")
    assert query(loaded, "SELECT count(*) FROM ss_events") != [(0,)]


def test_a_schema_behind_this_version_is_one_line_naming_migrate_and_is_left_alone(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(V1_SCHEMA)  # type: ignore[arg-type]
    tables = "SELECT relname FROM pg_class WHERE relname LIKE 'ss\\_%%' ORDER BY 1"
    before = query(fresh_db_url, tables)
    for command in READ_ONLY_COMMANDS:
        result = invoke(fresh_db_url, *command)
        assert result.exit_code == 1, f"{command[0]}: {result.output}"
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
        assert "v1.0.0's schema" in result.stderr and "run `shadowserver-ingestor migrate`" in result.stderr
    assert query(fresh_db_url, tables) == before
    assert invoke(fresh_db_url, "migrate").exit_code == 0
    assert invoke(fresh_db_url, "status", "--json").exit_code == 0
