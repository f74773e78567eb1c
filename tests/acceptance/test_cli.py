"""The command line as a user runs it: subprocesses against the simulator and a real PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime

import psycopg

from fixtures.pg import make_base_dir
from fixtures.sim import RunningSimulator

MakeSim = Callable[..., RunningSimulator]


def cli(*args: str, env: dict[str, str] | None = None, module: str = "ingestor") -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SS_", "DB_", "DATABASE_", "EMBEDDED_"))}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env={**base, "LOG_FORMAT": "text", **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
    )


def lookback_to(day: date) -> str:
    """SS_LOOKBACK_DAYS for a cycle (its window ends on the real UTC today) that reaches back to ``day``, with a
    day to spare: a midnight during the test moves the window's end, never past ``day``."""
    return str(max(0, (datetime.now(UTC).date() - day).days) + 1)


def test_backfill_loads_every_row_and_a_second_run_downloads_nothing(
    make_simulator: MakeSim, migrated_db_url: str
) -> None:
    sim = make_simulator(days=4, rows=15)
    env = {**sim.env, "DATABASE_URL": migrated_db_url, "REQUEST_DELAY_SECONDS": "0"}
    first = cli("backfill", "3", "--until", str(sim.sim.today()), env=env)
    assert first.returncode == 0, first.stderr
    with psycopg.connect(migrated_db_url) as conn:
        stored = conn.execute("SELECT count(*) FROM ss_events").fetchone()
        files = conn.execute("SELECT count(*) FROM ss_report_files WHERE status = 'loaded'").fetchone()
    assert stored == (sum(r.row_count for r in sim.reports()),)
    assert files == (len(sim.reports()),)
    downloads = sim.counters.downloads_started()
    second = cli("backfill", "3", "--until", str(sim.sim.today()), env=env)
    assert second.returncode == 0, second.stderr
    assert sim.counters.downloads_started() == downloads
    assert "0 inserted" in second.stdout


def test_v1_invocations_keep_working(make_simulator: MakeSim, migrated_db_url: str) -> None:
    sim = make_simulator(days=1, rows=5)
    env = {
        **sim.env,
        "DATABASE_URL": migrated_db_url,
        "REQUEST_DELAY_SECONDS": "0",
        "SS_LOOKBACK_DAYS": lookback_to(sim.sim.today()),
    }
    ping = cli("--ping", env=env, module="ingestor.main")
    assert ping.returncode == 0, ping.stderr
    assert "pong" in json.loads(ping.stdout)
    once = cli("--once", env=env, module="ingestor.main")
    assert once.returncode == 0, once.stderr
    assert f"{sim.reports()[0].row_count} inserted" in once.stdout
    refused = cli("--backfill", "-1", env=env, module="ingestor.main")
    assert refused.returncode == 2 and "0 or more" in refused.stderr


def test_failures_give_non_zero_exit_codes(make_simulator: MakeSim, migrated_db_url: str) -> None:
    sim = make_simulator(days=1, rows=5, types=("scan_ssl", "device_id"))
    env = {**sim.env, "DATABASE_URL": migrated_db_url, "REQUEST_DELAY_SECONDS": "0", "SS_MAX_RETRIES": "0"}
    sim.faults.update(force_status=401)
    refused = cli("once", env=env)
    assert refused.returncode == 1
    assert "credentials" in refused.stdout + refused.stderr
    ping = cli("ping", env=env)
    assert ping.returncode == 1 and "HTTP 401" in ping.stderr
    sim.faults.clear()
    sim.faults.update(empty_types=["device_id"])
    partial = cli("backfill", "0", "--until", str(sim.sim.today()), env=env)
    assert partial.returncode == 4, partial.stdout + partial.stderr
    sim.faults.update(empty_types=["device_id", "scan_ssl"])
    sim.faults.update(gone_ids=[r.id for r in sim.reports()])
    failed = cli("backfill", "0", "--until", str(sim.sim.today()), env=env)
    assert failed.returncode == 1
    unreachable = cli("once", env={**env, "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none?connect_timeout=2"})
    assert unreachable.returncode == 1 and "cannot connect" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr


def test_configuration_problems_are_listed_together_with_exit_code_2() -> None:
    result = cli("once", env={"DB_PORT": "many", "BACKFILL_DAYS": "-3", "SS_API_SECRET": "s3cret-value"})
    assert result.returncode == 2
    for name in ("SS_API_KEY", "DB_PORT", "BACKFILL_DAYS"):
        assert name in result.stderr
    assert "s3cret-value" not in result.stderr and "Traceback" not in result.stderr


def test_demo_runs_end_to_end_on_an_embedded_database() -> None:
    base = make_base_dir("ssi-demo-")
    try:
        result = cli("demo", "--days", "1", "--rows", "20", "--data-dir", str(base / "pgdata"))
        assert result.returncode == 0, result.stderr[-2000:]
        assert "downloads in the second cycle: 0, rows inserted: 0" in result.stdout
        assert "what landed in ss_events" in result.stdout
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_an_interrupted_command_exits_130(make_simulator: MakeSim) -> None:
    from ingestor.simulator import Faults

    sim = make_simulator(faults=Faults(api_errors_next=1, api_latency=2.0))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SS_", "DB_", "DATABASE_", "EMBEDDED_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingestor", "ping"],
        env={**base, "LOG_FORMAT": "text", **sim.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while sim.counters.api_calls("test/ping") == 0:  # the first call failed: ping is retrying now
            assert time.monotonic() < deadline and proc.poll() is None, "ping did not call the API"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (out, err)
    assert err.splitlines()[-1] == "interrupted" and "Traceback" not in err
