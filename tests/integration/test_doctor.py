"""``doctor`` against a healthy setup and broken ones: a real PostgreSQL, the simulator over HTTP."""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from ingestor.db.migrate import migrate
from ingestor.ops.doctor import Doctor, Verdict
from ingestor.simulator import ApiKey

from fixtures.cli import invoke
from fixtures.pg import PgServer
from fixtures.sim import RunningSimulator

MakeSim = Callable[..., RunningSimulator]


@pytest.fixture
def viewer(pg_server: PgServer, migrated_db_url: str) -> Iterator[str]:
    """A viewer role that may log in, granted by a migration run: what a healthy deployment has."""
    name = f"viewer_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'viewer-test'").format(sql.Identifier(name)))
    with psycopg.connect(migrated_db_url, autocommit=True) as conn:
        migrate(conn, name)
    yield name
    with psycopg.connect(migrated_db_url, autocommit=True) as conn:  # its grants live in that database
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
    with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def healthy_env(sim: RunningSimulator, url: str, viewer: str) -> dict[str, str]:
    return {**sim.env, "DATABASE_URL": url, "VIEWER_ROLE": viewer, "HEALTH_PORT": "0"}


def verdicts(env: dict[str, str], **options: object) -> list[Verdict]:
    return list(Doctor(environ=env, env_file=None, **options).run())  # type: ignore[arg-type]


def failures(found: list[Verdict]) -> list[tuple[str, str]]:
    return [(v.area, v.message) for v in found if v.status == "fail"]


def test_a_healthy_setup_is_all_ok_and_exits_0(simulator: RunningSimulator, migrated_db_url: str, viewer: str) -> None:
    result = invoke(migrated_db_url, "doctor", env=healthy_env(simulator, migrated_db_url, viewer))
    assert result.exit_code == 0, result.stdout
    lines = result.stdout.splitlines()
    assert lines[-1] == "everything checked is fine"
    assert all(line.startswith("ok ") for line in lines[:-1]), result.stdout
    for expected in (
        "answers test/ping",
        "clock is",
        "the key is active",
        "subscribed to example-org",
        "the schema is current",
        f"{viewer} may log in and read",
        "HEALTH_PORT=0",
    ):
        assert expected in result.stdout, expected
    assert all(line == line.rstrip() and "\x1b" not in line for line in lines)  # piped: plain


def test_a_wrong_secret_fails_the_api_and_exits_1(
    simulator: RunningSimulator, migrated_db_url: str, viewer: str
) -> None:
    env = {**healthy_env(simulator, migrated_db_url, viewer), "SS_API_SECRET": "not-the-secret"}
    result = invoke(migrated_db_url, "doctor", env=env)
    assert result.exit_code == 1
    (bad,) = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert bad.startswith("FAIL  api ") and "refused the credentials" in bad and "Do: check SS_API_KEY" in bad
    assert "the schema is current" in result.stdout  # the other checks still ran


def test_an_unreachable_database_fails_with_what_to_check(simulator: RunningSimulator, viewer: str) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://nobody@127.0.0.1:{port}/nowhere?connect_timeout=3"
    found = verdicts(healthy_env(simulator, url, viewer))
    assert [area for area, _ in failures(found)] == ["database"]
    (problem,) = [v for v in found if v.status == "fail"]
    assert "cannot connect to PostgreSQL" in problem.message and "DB_HOST" in problem.fix


def test_placeholders_fail_the_configuration_and_nothing_else_is_tried(simulator: RunningSimulator) -> None:
    env = {**simulator.env, "SS_API_KEY": "<your-shadowserver-api-key>"}
    result = invoke("", "doctor", env=env)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("FAIL  config    SS_API_KEY is still the placeholder <your-shadowserver-api-key>")
    assert [line.split()[0] for line in lines[1:3]] == ["skip", "skip"] and simulator.counters.api_calls() == 0


def test_a_skewed_clock_fails(simulator: RunningSimulator, migrated_db_url: str, viewer: str) -> None:
    env = healthy_env(simulator, migrated_db_url, viewer)
    ahead = verdicts(env, now=lambda: datetime.now(UTC) + timedelta(minutes=10))
    ((area, message),) = failures(ahead)
    assert area == "clock" and re.match(r"this machine's clock is 6\d\d s ahead of the API's", message)
    behind = [v for v in verdicts(env, now=lambda: datetime.now(UTC) - timedelta(minutes=2)) if v.area == "clock"]
    assert [v.status for v in behind] == ["warn"] and "behind" in behind[0].message


def test_a_key_without_subscriptions_and_a_busy_health_port_fail(
    make_simulator: MakeSim, migrated_db_url: str, viewer: str
) -> None:
    sim = make_simulator(keys=(ApiKey(subscriptions=()),))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = {**healthy_env(sim, migrated_db_url, viewer), "HEALTH_HOST": "127.0.0.1"}
        env["HEALTH_PORT"] = str(busy.getsockname()[1])
        found = failures(verdicts(env))
    assert [area for area, _ in found] == ["api", "health"]
    assert "subscribed to no report list" in found[0][1] and found[1][1].startswith("port in use: 127.0.0.1:")


def test_a_role_without_the_grants_and_a_viewer_that_cannot_read_fail(
    pg_server: PgServer, simulator: RunningSimulator, make_db_url: Callable[..., str], viewer: str
) -> None:
    url = make_db_url()  # empty: the migrations are pending, and need CREATE on the schema
    role = f"ingestor_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'pw-test'").format(sql.Identifier(role)))
    try:
        parts = urlsplit(url)
        netloc = f"{role}:pw-test@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
        as_role = urlunsplit(parts._replace(netloc=netloc))
        found = verdicts(healthy_env(simulator, as_role, viewer))
        ((area, message),) = failures(found)
        assert area == "database" and message.startswith(f"role {role} cannot create tables in the schema")
        fix = next(v.fix for v in found if v.status == "fail")
        assert f"GRANT CREATE, USAGE ON SCHEMA public TO {role}" in fix
    finally:
        with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_viewer_without_grants_fails(pg_server: PgServer, simulator: RunningSimulator, migrated_db_url: str) -> None:
    name = f"viewer_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    try:
        found = verdicts(healthy_env(simulator, migrated_db_url, name))
        assert failures(found) == [("viewer", f"{name} cannot read ss_events and ss_ingestion_log")]
    finally:
        with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
