"""A cycle of many files of mixed types and sizes, loaded with 1 and with N workers (INGEST_WORKERS).

    .venv/bin/python bench/cycle.py                     # 40 files, 2,000-40,000 rows each, workers 1 and 2
    .venv/bin/python bench/cycle.py --full              # 40 files, 5,000-200,000 rows each (about 20 minutes)
    .venv/bin/python bench/cycle.py --workers 1,2,4     # on a larger machine

The files: 20 report types of several column families (scan, event, device_id, blocklist, ...), two days
of each, with sizes spread evenly between the bounds, served by the simulator over loopback HTTP. Each
worker count loads the same files into a fresh database of the same server with the real CLI
(``backfill 1``, as a subprocess); throughput is the run's rows divided by its duration in
ss_ingestion_log. Every run must store exactly the same rows (checked), or the figure is void.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import Bench

from ingestor.simulator import Simulator, SimulatorConfig, SimulatorServer

TYPES = (
    "scan_ssl", "scan_http", "scan_rdp", "scan_ssh", "scan_smb", "scan_ntp", "scan_dns", "scan_snmp", "scan_telnet",
    "scan_vnc", "scan_mysql", "scan_postgres", "scan6_ssl", "device_id", "blocklist", "event4_sinkhole",
    "event4_sinkhole_http", "event4_honeypot_brute_force", "event4_honeypot_darknet", "sandbox_url",
)  # fmt: skip
"""20 report types of the scan, event, device and other families: 40 files over two days."""


def sizes(count: int, low: int, high: int) -> list[int]:
    """``count`` file sizes spread evenly from ``low`` to ``high`` (interleaved, so each day mixes sizes)."""
    step = (high - low) / max(count - 1, 1)
    spread = [round(low + step * i) for i in range(count)]
    return spread[0::2] + spread[1::2]


class Cycle(Bench):
    def simulator_of(self, rows: dict[str, int]) -> tuple[Simulator, SimulatorServer]:
        config = SimulatorConfig(types=TYPES, days=2, rows=rows, today=date.fromisoformat(self.day), seed=11)
        cache = self.base / "sim-cycle"
        cache.mkdir(exist_ok=True)
        sim = Simulator(config, cache_dir=cache)
        for report in sim.reports():  # render every file before timing anything
            sim.path_of(report)
        return sim, SimulatorServer(sim).start()

    def measure(self, workers: list[int], low: int, high: int) -> dict[str, Any]:
        per_type = sizes(len(TYPES), low, high)
        sim, server = self.simulator_of(dict(zip(TYPES, per_type, strict=True)))
        reports = sim.reports()
        expected = sum(r.row_count for r in reports)
        runs: dict[int, dict[str, Any]] = {}
        stored: list[Any] = []
        try:
            for count in workers:
                url = self.new_database(f"cycle_w{count}")
                self.stop_autovacuum(url)
                until = date.fromisoformat(self.day)
                run = self.run_cli_env(
                    url, server, {"INGEST_WORKERS": str(count)}, "backfill", "1", "--until", str(until)
                )
                if run["rows_read"] != expected:
                    raise RuntimeError(f"{count} workers read {run['rows_read']} rows, the files hold {expected}")
                with psycopg.connect(url) as conn:
                    row = conn.execute(
                        "SELECT count(*), sum(hashtext(report_type || report_date || event_hash)::bigint)"
                        " FROM ss_events"
                    ).fetchone()
                stored.append(row)
                runs[count] = {**run, "rows_per_second": run["rows_read"] / run["seconds"]}
        finally:
            server.stop()
            sim.close()
        if len(set(stored)) != 1:
            raise RuntimeError(f"the worker counts stored different rows: {stored}")
        base = runs[workers[0]]["rows_per_second"]
        return {
            "files": len(reports),
            "rows": expected,
            "sizes": [min(per_type), max(per_type)],
            "server_version": self.figures.get("server_version"),
            "runs": {
                str(count): {
                    "seconds": round(r["seconds"], 2),
                    "rows_per_second": round(r["rows_per_second"]),
                    "speedup": round(r["rows_per_second"] / base, 2),
                }
                for count, r in runs.items()
            },
        }

    def run_cli_env(self, url: str, server: SimulatorServer, extra: dict[str, str], *command: str) -> dict[str, Any]:
        import os

        saved = {key: os.environ.get(key) for key in extra}
        os.environ.update(extra)
        try:
            return self.run_cli(url, server, *command)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2", help="worker counts to compare, the first is the reference")
    parser.add_argument("--min-rows", type=int, default=2_000)
    parser.add_argument("--max-rows", type=int, default=40_000)
    parser.add_argument("--full", action="store_true", help="5,000 to 200,000 rows per file")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--database-url")
    parser.add_argument("--work-dir")
    args = parser.parse_args(argv)
    if args.full:
        args.min_rows, args.max_rows = 5_000, 200_000
    workers = [int(n) for n in args.workers.split(",")]
    bench_args = argparse.Namespace(
        work_dir=args.work_dir,
        database_url=args.database_url,
        keep=False,
        type="scan_ssl",
        columns="30",
        layout="partitioned",
        scale_days=90,
    )
    cycle = Cycle(bench_args)
    try:
        cycle.start()
        result = cycle.measure(workers, args.min_rows, args.max_rows)
    finally:
        cycle.close()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"PostgreSQL {result['server_version']}: {result['files']} files, {result['rows']:,} rows"
        f" ({result['sizes'][0]:,}-{result['sizes'][1]:,} per file), two report days"
    )
    print(f"{'workers':>7} {'seconds':>8} {'rows/s':>8} {'vs 1':>5}")
    for count, run in result["runs"].items():
        print(f"{count:>7} {run['seconds']:>8.1f} {run['rows_per_second']:>8,} {run['speedup']:>5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
