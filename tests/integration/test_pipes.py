"""Every command, piped: plain text or CSV/JSON, never box drawing, colour codes or trailing spaces (what
``| cat -A`` shows), and its machine formats parse."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import Result

from fixtures.cli import invoke
from fixtures.sim import SIM_TODAY, RunningSimulator

SCHEMA = Path(__file__).resolve().parents[1] / "data" / "schema" / "reports.json"
BOX = re.compile("[\u2500-\u257f\u2580-\u259f]")
ANSI = re.compile(r"\x1b\[")


def assert_plain(result: Result, what: str) -> None:
    for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        assert not BOX.search(text), f"{what}: box drawing on {stream}:\n{text}"
        assert not ANSI.search(text), f"{what}: escape codes on {stream}:\n{text}"
        trailing = [line for line in text.splitlines() if line != line.rstrip()]
        assert not trailing, f"{what}: trailing spaces on {stream}: {trailing[:3]}"
    assert "Traceback" not in result.output, what


@pytest.fixture
def loaded(simulator: RunningSimulator, migrated_db_url: str) -> tuple[str, dict[str, str]]:
    env = {**simulator.env, "REQUEST_DELAY_SECONDS": "0"}
    result = invoke(migrated_db_url, "backfill", "2", "--until", str(SIM_TODAY), env=env)
    assert result.exit_code == 0, result.output
    assert_plain(result, "backfill")
    return migrated_db_url, env


def test_every_command_piped_is_plain(loaded: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, env = loaded
    report = next(iter(sorted(Path(__file__).resolve().parents[1].joinpath("data", "reports").glob("*scan_ssl*"))))
    shutil.copyfile(report, tmp_path / report.name)
    day = str(SIM_TODAY)
    commands = [
        ["status"],
        ["types"],
        ["types", "--format", "table"],
        ["search", "--since", "2026-11-18"],
        ["search", "--since", "2026-11-18", "--format", "table"],
        ["new", "--since", "2026-11-18", "--until", day],
        ["new", "--since", "2026-11-18", "--until", day, "--format", "table"],
        ["prune", "--older-than", "1", "--dry-run"],
        ["import", str(tmp_path / report.name)],
        ["once"],
        ["backfill", "0", "--until", day],
        ["migrate"],
        ["ping"],
        ["db", "url"],
        ["events", "partition"],
        ["catalog", "refresh", "--from", str(SCHEMA), "--dry-run"],
        ["doctor"],
        ["findings"],
        ["findings", "--format", "table"],
        ["trends"],
        ["report", "--html", str(tmp_path / "report.html")],
        ["status", "--orgs"],
        ["orgs", "list"],
        ["orgs", "status"],
        ["orgs", "unmatched"],
    ]
    for args in commands:
        result = invoke(url, *args, env={**env, "SS_DATA_DIR": str(tmp_path / "data"), "HEALTH_PORT": "0"})
        assert result.exit_code in (0, 1), f"{args}: {result.output}"  # doctor: 1 (no viewer role here)
        assert result.stdout.strip(), f"{args} printed nothing"
        assert_plain(result, " ".join(args))


def test_the_machine_formats_parse(loaded: tuple[str, dict[str, str]]) -> None:
    url, env = loaded
    as_json = {
        "status": ["status", "--json"],
        "types": ["types", "--format", "json"],
        "prune": ["prune", "--older-than", "1", "--dry-run", "--format", "json"],
        "once": ["once", "--json"],
        "migrate": ["migrate", "--json"],
        "doctor": ["doctor", "--json"],
    }
    for name, args in as_json.items():
        result = invoke(url, *args, env=env)
        data = json.loads(result.stdout)
        assert data, name
    run = json.loads(invoke(url, "backfill", "0", "--until", str(SIM_TODAY), "--format", "json", env=env).stdout)
    assert run["status"] == "success" and run["files_new"] == 0 and run["kind"] == "backfill"
    types = list(csv.DictReader(io.StringIO(invoke(url, "types", env=env).stdout)))  # piped default: CSV
    assert {"type", "events", "in_catalog"} <= set(types[0])
    piped_once = invoke(url, "once", env=env).stdout.splitlines()
    assert re.fullmatch(r"run \d+ success: \d+ files listed, 0 new, .*", piped_once[-1])
