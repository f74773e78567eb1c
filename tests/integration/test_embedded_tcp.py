"""The embedded server's opt-in TCP listener: the viewer with its password, nobody without one, never trust."""

from __future__ import annotations

import logging
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from ingestor.cli import main
from ingestor.config import Settings, load_settings
from ingestor.db.connect import Database
from ingestor.db.embedded import EmbeddedPostgres
from ingestor.db.migrate import migrate
from ingestor.errors import ConfigError, EmbeddedPostgresError

from fixtures.pg import make_base_dir

PASSWORD = "viewer-pass-7f3a"


@pytest.fixture
def base() -> Iterator[Path]:
    path = make_base_dir("ssi-tcp-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def embedded(base: Path, **env: str) -> Settings:
    return load_settings({"EMBEDDED_DB_DIR": str(base / "pgdata"), **env}, env_file=None)


def tcp_url(port: int, user: str = "shadowserver_viewer", password: str | None = PASSWORD) -> str:
    credentials = f"{user}:{password}" if password is not None else user
    return f"postgresql://{credentials}@127.0.0.1:{port}/shadowserver_db?connect_timeout=5"


def test_the_viewer_reads_over_tcp_with_its_password_and_nobody_gets_in_otherwise(base: Path) -> None:
    port = free_port()
    db = Database.from_settings(embedded(base, EMBEDDED_DB_LISTEN=f"127.0.0.1:{port}", VIEWER_PASSWORD=PASSWORD))
    try:
        with db.connect() as conn:
            migrate(conn, "shadowserver_viewer")  # what every command does first: grants the viewer SELECT
        with psycopg.connect(tcp_url(port)) as viewer:
            assert viewer.execute("SELECT count(*) FROM ss_events").fetchone() == (0,)
            assert viewer.execute("SELECT inet_server_addr()::text").fetchone() == ("127.0.0.1/32",)  # TCP indeed
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                viewer.execute("DELETE FROM ss_ingestion_log")
        for refused, reason in (
            (tcp_url(port, password="wrong"), "password authentication failed"),
            (tcp_url(port, password=None), "no password supplied"),
            (tcp_url(port, user="postgres", password=None), "no pg_hba.conf entry"),  # trust is socket-only
            (tcp_url(port, user="postgres", password="anything"), "no pg_hba.conf entry"),
        ):
            with pytest.raises(psycopg.OperationalError, match=reason):
                psycopg.connect(refused)
        rules = [line.split() for line in (base / "pgdata/pg_hba.conf").read_text().splitlines()]
        rules = [rule for rule in rules if rule and not rule[0].startswith("#")]
        assert rules == [
            ["local", "all", "all", "trust"],
            ["host", '"shadowserver_db"', '"shadowserver_viewer"', "all", "scram-sha-256"],
        ]
    finally:
        db.close()


def test_without_a_listener_the_viewer_exists_but_there_is_no_tcp_at_all(base: Path) -> None:
    port = free_port()
    db = Database.from_settings(embedded(base, VIEWER_PASSWORD=PASSWORD))
    try:
        with db.connect() as conn:
            row = conn.execute("SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = 'shadowserver_viewer'")
            assert row.fetchone() == (True, False)
            assert conn.execute("SELECT current_setting('listen_addresses')").fetchone() == ("",)
        with pytest.raises(psycopg.OperationalError, match="refused"):
            psycopg.connect(tcp_url(port))
        assert "host" not in (base / "pgdata/pg_hba.conf").read_text().replace("# No TCP", "")
    finally:
        db.close()


def test_a_listener_without_a_viewer_password_is_refused_with_one_clear_line(base: Path) -> None:
    with pytest.raises(ConfigError, match=r"EMBEDDED_DB_LISTEN needs VIEWER_PASSWORD \(or VIEWER_PASSWORD_FILE\)"):
        embedded(base, EMBEDDED_DB_LISTEN="5432")
    result = CliRunner().invoke(main, ["db", "url"], env={"EMBEDDED_DB_DIR": str(base), "EMBEDDED_DB_LISTEN": "5432"})
    assert result.exit_code == 2 and "EMBEDDED_DB_LISTEN needs VIEWER_PASSWORD" in result.output
    with pytest.raises(EmbeddedPostgresError, match="needs the viewer role and its password"):
        EmbeddedPostgres(base / "pgdata", listen_host="127.0.0.1")
    assert not (base / "pgdata").exists()
    # An external database has no embedded listener to protect: the setting is not in the way.
    assert load_settings({"DB_HOST": "db.internal", "EMBEDDED_DB_LISTEN": "5432"}, env_file=None).db_host


def test_the_password_comes_from_a_file_never_shows_and_a_new_one_applies_at_the_next_start(
    base: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    secret = tmp_path / "viewer_password"
    secret.write_text(PASSWORD + "\n")
    settings = embedded(base, EMBEDDED_DB_LISTEN=str(port), VIEWER_PASSWORD_FILE=str(secret))
    assert PASSWORD in settings.secrets() and PASSWORD not in repr(settings)
    with caplog.at_level(logging.DEBUG), Database.from_settings(settings):
        psycopg.connect(tcp_url(port)).close()  # a port alone: loopback
    assert PASSWORD not in caplog.text
    with Database.from_settings(embedded(base, EMBEDDED_DB_LISTEN=str(port), VIEWER_PASSWORD="the-next-one")):
        psycopg.connect(tcp_url(port, password="the-next-one")).close()
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(tcp_url(port))


def test_listening_on_every_address_works_and_is_warned_about(base: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    settings = embedded(base, EMBEDDED_DB_LISTEN=f"0.0.0.0:{port}", VIEWER_PASSWORD=PASSWORD)
    with caplog.at_level(logging.WARNING, logger="ingestor.db.lease"), Database.from_settings(settings):
        psycopg.connect(tcp_url(port)).close()
    assert "accepts the viewer from other machines" in caplog.text and "no TLS" in caplog.text
