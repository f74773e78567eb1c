"""Every numeric argument is range-checked: bad input is one line on stderr and exit code 2, never a
traceback, an overflow deep in date arithmetic or a database error."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingestor.db.embedded import default_data_dir

from fixtures.cli import invoke
from fixtures.sim import RunningSimulator


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["prune", "--older-than", "99999999999", "--dry-run"], "'--older-than': 99999999999 is not in the range"),
        (["prune", "--older-than", "30", "--batch", "99999999999999"], "'--batch'"),
        (["prune", "--older-than", "30", "--ledger-older-than", "99999999999"], "'--ledger-older-than'"),
        (["backfill", "99999999"], "'DAYS': 99999999 is not in the range 0<=x<=3650"),
        (["backfill", "10", "--until", "0001-01-05"], "before the year 1"),
        (["search", "--limit", "99999999999999999999"], "'--limit'"),
        (["new", "--since", "7d", "--limit", "99999999999999999999"], "'--limit'"),
        (["status", "--runs", "99999999999"], "'--runs'"),
        (["run", "--interval", "1e308"], "'--interval'"),
        (["run", "--interval", "nan"], "'--interval': 'nan' is not a finite number"),
        (["run", "--jitter", "inf"], "'--jitter'"),
        (["run", "--backfill-days", "99999999999"], "'--backfill-days'"),
        (["simulate", "--latency", "inf"], "'--latency'"),
        (["simulate", "--error-rate", "nan"], "'--error-rate': 'nan' is not a finite number"),
        (["simulate", "--error-status", "99999"], "'--error-status'"),
        (["simulate", "--rows", "99999999999999"], "'--rows'"),
        (["demo", "--days", "99999"], "'--days'"),
    ],
)
def test_out_of_range_numbers_are_one_line_and_exit_2(migrated_db_url: str, args: list[str], message: str) -> None:
    result = invoke(migrated_db_url, *args)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: ")


def test_out_of_range_settings_are_a_configuration_error(migrated_db_url: str) -> None:
    result = invoke(migrated_db_url, "prune", "--dry-run", env={"RETENTION_DAYS": "99999999999"})
    assert result.exit_code == 2 and "RETENTION_DAYS" in result.stderr and "Traceback" not in result.stderr
    interval = invoke(migrated_db_url, "status", env={"INGEST_INTERVAL_MINUTES": "inf"})
    assert interval.exit_code == 2 and "finite" in interval.stderr


def test_the_simulator_never_writes_into_the_default_embedded_database(
    simulator: RunningSimulator, tmp_path: Path
) -> None:
    env = {**simulator.env, "DATABASE_URL": "", "DB_HOST": "", "EMBEDDED_DB_DIR": "", "HOME": str(tmp_path)}
    before = default_data_dir().exists()
    for args in (["backfill", "0"], ["once"], ["run", "--health-port", "0"]):
        result = invoke("", *args, env=env)
        assert result.exit_code == 2, (args, result.output)
        assert (
            result.stderr.count("\n") == 1 and "is a simulator" in result.stderr and "EMBEDDED_DB_DIR=" in result.stderr
        )
    assert default_data_dir().exists() == before and simulator.counters.downloads_started() == 0
