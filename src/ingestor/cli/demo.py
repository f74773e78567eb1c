"""``shadowserver-ingestor demo``: the first command to run. No API key, no database server needed.

It starts the local simulator (in this process, on a free loopback port) and an embedded PostgreSQL in a
demo data directory of its own, backfills a few days of realistic reports through the real pipeline,
shows what landed, and runs a second cycle to show that nothing is downloaded or inserted twice.
"""

from __future__ import annotations

import logging
import sys
from datetime import date
from pathlib import Path

import click
from rich.rule import Rule

from ingestor.cli.ingest import ingest_window
from ingestor.cli.output import command_prefix
from ingestor.cli.runtime import handle_errors, runtime
from ingestor.db.embedded import default_data_dir
from ingestor.ops.screen import Screen
from ingestor.simulator import DEFAULT_TYPES, Malformations, Simulator, SimulatorConfig, SimulatorServer

DEMO_KEY, DEMO_SECRET = "demo-key", "demo-secret"


def demo_data_dir() -> Path:
    """Next to the default embedded database, never inside it."""
    return default_data_dir().parent / "demo" / "pgdata"


@click.command()
@click.option("--days", default=2, show_default=True, type=click.IntRange(0, 30), help="Days to backfill.")
@click.option("--rows", default=200, show_default=True, type=click.IntRange(1, 1_000_000), help="Rows per report.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Embedded database directory (default: a demo directory beside the default one).",
)
@handle_errors
def demo(days: int, rows: int, data_dir: Path | None) -> None:
    """Simulator + embedded PostgreSQL + a backfill through the real pipeline, then what landed."""
    data_dir = data_dir or demo_data_dir()
    console = Screen()
    config = SimulatorConfig(
        days=days + 1,
        rows=rows,
        types=(*DEFAULT_TYPES, "event6_sinkhole_http_referer", "scan6_ssh"),
        unknown_types=("scan_futureproto",),
        malformed=Malformations(rate=0.01),
    )
    with Simulator(config) as sim, SimulatorServer(sim) as server:
        overrides = {
            "SS_API_URL": server.api_url,
            "SS_DOWNLOAD_URL": server.download_url,
            "SS_API_KEY": DEMO_KEY,
            "SS_API_SECRET": DEMO_SECRET,
            "DATABASE_URL": "",
            "DB_HOST": "",
            "EMBEDDED_DB_DIR": str(data_dir),
            "REQUEST_DELAY_SECONDS": 0,
            "SS_REPORT_TYPES": "",
            "SS_REPORTS": "",
        }
        with runtime(need_api=True, need_db=True, overrides=overrides) as rt:
            logging.getLogger("ingestor.simulator").setLevel(logging.WARNING)
            _rule(console, "shadowserver-ingestor demo")
            console.print(
                f"simulator on {server.api_url} serving {len(sim.reports())} report files "
                f"({rows} rows each, {days + 1} days, a few malformed rows, one report type unknown to the catalog)"
            )
            console.print(f"embedded PostgreSQL in {data_dir}\n")
            first = ingest_window(rt, "backfill", days=days)
            _show_landed(rt.require_db().conninfo, console)
            _rule(console, "second cycle: everything is already loaded")
            downloads = sim.counters.downloads_started()
            second = ingest_window(rt, "once")
            console.print(
                f"downloads in the second cycle: {sim.counters.downloads_started() - downloads}, "
                f"rows inserted: {second.totals.rows_inserted}"
            )
            _next_steps(console, data_dir)
    sys.exit(max(first.exit_code, second.exit_code))


def _rule(console: Screen, title: str) -> None:
    console.print(f"\n== {title} ==" if console.plain else Rule(f"[bold]{title}"))


def _show_landed(conninfo: str, console: Screen) -> None:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        per_type = conn.execute(
            "SELECT report_type, count(*), count(DISTINCT report_date), count(ip), min(report_date), max(report_date)"
            " FROM ss_events GROUP BY 1 ORDER BY 1"
        ).fetchall()
        samples = conn.execute(
            "SELECT DISTINCT ON (report_type) report_type, host(ip), port, asn, geo, hostname, severity"
            " FROM ss_events ORDER BY report_type, id"
        ).fetchall()
        findings = conn.execute("SELECT count(*) FROM ss_findings").fetchone()
    table = console.table(
        "what landed in ss_events",
        "report type",
        "rows",
        "days",
        "with IP",
        "from",
        "to",
        right=("rows", "days", "with IP"),
    )
    for report_type, count, day_count, with_ip, first, last in per_type:
        table.add_row(report_type, f"{count:,}", str(day_count), f"{with_ip:,}", _day(first), _day(last))
    console.print(table)
    sample = console.table(
        "one row per type: the subject columns", "report type", "ip", "port", "asn", "geo", "hostname", "severity"
    )
    for row in samples:
        sample.add_row(*("" if value is None else str(value) for value in row))
    console.print(sample)
    console.print(f"findings tracked (type + host + service): {findings[0] if findings else 0:,}\n")


def _day(value: date | None) -> str:
    return value.isoformat() if value else ""


def _next_steps(console: Screen, data_dir: Path) -> None:
    _rule(console, "next")
    me = command_prefix()
    console.print(
        "Query the demo database with the operator commands, e.g.\n"
        f"  EMBEDDED_DB_DIR={data_dir} {me} status\n"
        f"  EMBEDDED_DB_DIR={data_dir} {me} search --ip 192.0.2.0/24\n"
        "With your Shadowserver API key: put SS_API_KEY and SS_API_SECRET in .env (see the README), then\n"
        f"  {me} doctor        checks the key, the database and the rest\n"
        f"  {me} backfill 7    or   {me} run"
    )
