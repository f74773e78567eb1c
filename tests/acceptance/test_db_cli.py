"""``db url`` and ``db shell``: how other programs reach the database, embedded or external."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result

from ingestor.cli import main
from ingestor.cli.db import psql_invocation
from ingestor.config import load_settings
from ingestor.db.connect import Database
from ingestor.db.embedded import find_pg_bindir

from fixtures.pg import make_base_dir

PASSWORD = "viewer-pw-93c1"


@pytest.fixture
def base() -> Iterator[Path]:
    path = make_base_dir("ssi-dbcli-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def db(*args: str, **env: str) -> Result:
    return CliRunner().invoke(main, ["db", *args], env=env, catch_exceptions=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_db_url_of_an_external_database_leaves_the_password_out_unless_asked() -> None:
    url = "postgresql://ingestor:s3cret-pw@db.example.org:5433/shadowserver_db?sslmode=require"
    shown = db("url", DATABASE_URL=url)
    assert (
        shown.exit_code == 0
        and shown.stdout == "postgresql://ingestor@db.example.org:5433/shadowserver_db?sslmode=require\n"
    )
    assert db("url", "--show-password", DATABASE_URL=url).stdout.strip() == url
    parts = db("url", DB_HOST="pg.internal", DB_PASSWORD="other-secret", DB_USER="u")
    assert parts.stdout.strip() == "postgresql://u@pg.internal:5432/shadowserver_db?connect_timeout=10&sslmode=prefer"
    assert "other-secret" not in parts.output


def test_db_url_of_the_embedded_database_names_its_socket_or_its_listener(base: Path) -> None:
    data_dir = str(base / "pgdata")
    idle = db("url", EMBEDDED_DB_DIR=data_dir)
    socket_dir = str(base / "run").replace("/", "%2F")
    assert idle.stdout.strip() == f"postgresql://postgres@/shadowserver_db?host={socket_dir}&port=5432"
    assert "not running now" in idle.stderr

    port = free_port()
    env = {"EMBEDDED_DB_DIR": data_dir, "EMBEDDED_DB_LISTEN": str(port), "VIEWER_PASSWORD": PASSWORD}
    settings = load_settings(env, env_file=None)
    with Database.from_settings(settings):
        shown = db("url", **env)
        assert shown.stdout.strip() == f"postgresql://shadowserver_viewer@127.0.0.1:{port}/shadowserver_db"
        assert PASSWORD not in shown.output and "not running" not in shown.stderr
        with_password = db("url", "--show-password", **env).stdout.strip()
        with psycopg.connect(with_password) as conn:  # what IRIS Data Explorer gets: it works as printed
            assert conn.execute("SELECT current_user").fetchone() == ("shadowserver_viewer",)


def test_db_shell_runs_psql_on_the_embedded_server_which_stays_up_while_it_runs(base: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DB_", "EMBEDDED_"))}
    shell = subprocess.run(
        [sys.executable, "-m", "ingestor", "db", "shell"],
        input="SELECT 'shell on ' || current_database();\n",
        env={**env, "EMBEDDED_DB_DIR": str(base / "pgdata")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shell.returncode == 0, shell.stderr
    assert "shell on shadowserver_db" in shell.stdout
    deadline = time.monotonic() + 20  # psql held the lease; its exit dropped it
    while (base / "pgdata/postmaster.pid").exists():
        assert time.monotonic() < deadline, "the server outlived the shell"
        time.sleep(0.05)


def test_db_shell_without_psql_says_so_in_one_line(base: Path) -> None:
    server_only = base / "server-only"
    server_only.mkdir()
    for name in ("postgres", "initdb"):
        (server_only / name).symlink_to(find_pg_bindir() / name)
    result = db("shell", EMBEDDED_DB_DIR=str(base / "pgdata"), PATH=str(base / "empty"), PG_BINDIR=str(server_only))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: psql is not installed") and result.stderr.count("\n") == 1
    assert not (base / "pgdata").exists()  # refused before anything started


def test_db_shell_gives_psql_the_password_in_its_environment_not_on_its_command_line() -> None:
    args, env = psql_invocation("/usr/bin/psql", "postgresql://ingestor:pw-on-argv@db.example.org/shadowserver_db")
    assert "pw-on-argv" not in " ".join(args) and env["PGPASSWORD"] == "pw-on-argv"
    assert "host=db.example.org" in args[1] and "user=ingestor" in args[1]


def test_an_embedded_data_dir_that_cannot_be_created_is_one_line_and_exit_1(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = CliRunner().invoke(main, ["status"], env={"EMBEDDED_DB_DIR": str(blocker / "pgdata")})
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cannot use the embedded PostgreSQL on {blocker}/pgdata: ")
    assert result.stderr.count("\n") == 1
