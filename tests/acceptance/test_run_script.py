"""``./run`` as a newcomer calls it: from another directory, with a ``.env`` there and relative paths."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from fixtures.cli import query

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "tests" / "data" / "reports" / "2026-11-19-scan_ssl-example-geo.csv"


def run_script(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SS_", "DB_", "DATABASE_", "EMBEDDED_", "SSI_"))}
    return subprocess.run(
        [str(ROOT / "run"), *args],
        cwd=cwd,
        env={**env, "LOG_FORMAT": "text"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_run_works_in_the_callers_directory_with_its_env_and_relative_paths(
    migrated_db_url: str, fresh_db_url: str, tmp_path: Path
) -> None:
    (tmp_path / "mail").mkdir()
    shutil.copyfile(REPORT, tmp_path / "mail" / REPORT.name)
    (tmp_path / ".env").write_text(f"DATABASE_URL={migrated_db_url}\n", encoding="utf-8")

    result = run_script("import", f"mail/{REPORT.name}", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert query(migrated_db_url, "SELECT count(*) > 0 FROM ss_events") == [(True,)]
    # the commands it suggests work as typed: they start the way ./run was called
    (tmp_path / ".env").write_text(f"DATABASE_URL={fresh_db_url}\n", encoding="utf-8")
    unmigrated = run_script("status", cwd=tmp_path)
    assert unmigrated.returncode == 1
    assert f"run `{ROOT / 'run'} migrate`" in unmigrated.stderr, unmigrated.stderr
