"""Ingestion benchmark: the real CLI against the simulator over loopback HTTP and a real PostgreSQL.

    python bench/ingest.py                 default size (50k rows, a minute or so)
    python bench/ingest.py --full          1M-row report, RSS at 100k and 1M, scale on 5M stored rows
    python bench/ingest.py --smoke         tiny; fails only if the pipeline is broken (CI)
    python bench/ingest.py --json          machine-readable
    PG_MAJOR=15 python bench/ingest.py     on another PostgreSQL major (tests/fixtures/pgdist.py fetches it);
                                           PG_BINDIR=... or --database-url=... for a server of yours

Everything is measured in the same run, on the same PostgreSQL server, so the ratios are comparable:

1. reference  raw COPY of the same rows (pre-formatted) into an empty table with our columns and indexes
2. fresh      ``shadowserver-ingestor backfill 0`` into an empty database (list, download, parse, normalise,
              hash, load, ledger, findings, audit)
3. 2nd file   a second file of the same type and day with the same rows (as the ``-asn`` variant of a
              ``-geo`` report carries), every row a duplicate, on tables never analysed (autovacuum is
              off for the benchmark's tables): what a load sees after a crash reset the statistics, or
              on a new database before autovacuum has caught up
4. duplicates the first file again, re-downloaded (its ledger entry removed), after ANALYZE
5. idle       a cycle with nothing new: API calls, downloads and seconds
6. scale      fresh ingest into a table already holding --scale-rows rows (analysed)
7. 2nd stale  then a second file of that type and day on top, statistics from before that day's first
              file: the everyday case of a ``-asn`` file arriving before autovacuum's next visit
8. peak RSS   of the ingesting process, at two report sizes
9. CPU        Python parse + normalise + hash + format per row, in microseconds

Throughput of the CLI runs is rows / run duration as recorded in ss_ingestion_log (process start-up and
schema checks excluded; the whole run from listing to the audit row included).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ingestor.catalog import load_catalog
from ingestor.db import partitions
from ingestor.db.connect import EMBEDDED_SETTINGS
from ingestor.db.embedded import EmbeddedPostgres
from ingestor.db.migrate import migrate
from ingestor.parse.batches import copy_line
from ingestor.parse.csvfile import CsvProblem, ReportCsv, cells_of
from ingestor.parse.normalize import NormalizedRow, RowNormalizer
from ingestor.simulator import CsvStyle, Simulator, SimulatorConfig, SimulatorServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from queries import make_plain

from fixtures.pgdist import PgDistError, use_requested_major
from fixtures.v1 import V1_SCHEMA, v1_insert_file

SCAN_SSL_30 = (
    "timestamp", "severity", "ip", "protocol", "port", "hostname", "tag", "asn", "geo", "region", "city", "naics",
    "hostname_source", "sector", "handshake", "cipher_suite", "subject_common_name", "issuer_common_name",
    "cert_issue_date", "cert_expiration_date", "sha1_fingerprint", "cert_serial_number", "signature_algorithm",
    "key_algorithm", "subject_organization_name", "issuer_organization_name", "sha256_fingerprint", "md5_fingerprint",
    "http_date", "jarm",
)  # fmt: skip
"""The default row shape: 30 scan_ssl columns, about 750 bytes per CSV row."""

RSS_WRAPPER = """
import atexit, os, runpy, sys, threading, time
target, peak = sys.argv[1], [0]

def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0

def tree():
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    children.setdefault(int(stat.read().rsplit(")", 1)[1].split()[1]), []).append(int(entry))
            except OSError:
                pass
    pids, todo = [], [os.getpid()]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += children.get(pid, [])
    return pids

def sample():
    while True:
        peak[0] = max(peak[0], sum(rss_kb(pid) for pid in tree()))
        time.sleep(0.05)

def report():
    with open("/proc/self/status") as status, open(target, "w") as out:
        own = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
        out.write(f"{own} {peak[0]}")

threading.Thread(target=sample, daemon=True).start()
atexit.register(report)
sys.argv = ["shadowserver-ingestor", *sys.argv[2:]]
runpy.run_module("ingestor", run_name="__main__")
"""
"""Runs the CLI and records its peak RSS: VmHWM of the process itself (which starts afresh at exec, unlike
ru_maxrss), and the largest sum of RSS over the process and its descendants (its parse worker), sampled
every 50 ms."""

TABLES = ("ss_events", "ss_findings", "ss_reports", "ss_report_files", "ss_ingestion_log")
"""The tables a load reads; autovacuum is off for them in the measured database, so the statistics are
the ones each measure sets up, not whatever autovacuum did in between."""

EVENT_COLUMNS = (
    "report_type, report_date, file_id, ip, port, asn, geo, hostname, tag, severity, event_time, raw_data, event_hash"
)


@dataclass
class Measure:
    name: str
    rows: int
    seconds: float
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.render_seconds: dict[int, float] = {}
        self.base = Path(args.work_dir or "/tmp") / f"ssi-bench-{os.getpid()}"
        self.base.mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o755)
        self.server: EmbeddedPostgres | None = None
        self.admin_url = args.database_url
        self.catalog = load_catalog()
        self.columns = self._columns()
        self.results: list[Measure] = []
        self.figures: dict[str, Any] = {}
        self._databases: list[str] = []
        self.day = datetime.now(UTC).date().isoformat()
        """The simulated report day; CLI runs name it, so a run across midnight UTC still finds the file."""

    # ---- setup ----------------------------------------------------------------------------------

    def _columns(self) -> tuple[str, ...]:
        fields = self.catalog.types[self.args.type].fields
        if self.args.columns == "all":
            return fields
        if self.args.type == "scan_ssl" and self.args.columns == "30":
            return SCAN_SSL_30
        return fields[: int(self.args.columns)]

    def start(self) -> None:
        if not self.admin_url:
            use_requested_major()
            settings = {**EMBEDDED_SETTINGS, "autovacuum": "off"}  # every measure sets up its own statistics
            self.server = EmbeddedPostgres(self.base / "pgdata", db_name="postgres", settings=settings)
            self.server.start()
            self.admin_url = self.server.admin_url()
        with psycopg.connect(self.admin_url) as conn:
            (self.figures["server_version"],) = conn.execute("SHOW server_version").fetchone() or ("?",)

    def close(self) -> None:
        for name in self._databases:
            self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if self.server is not None:
            self.server.stop()
        if not self.args.keep:
            shutil.rmtree(self.base, ignore_errors=True)

    def _admin(self, statement: sql.Composed) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(statement)

    def new_database(self, label: str, *, migrated: bool = True) -> str:
        name = f"ssi_bench_{label}_{os.getpid()}"
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._databases.append(name)
        url = make_conninfo(self.admin_url, dbname=name)
        if migrated:
            with psycopg.connect(url, autocommit=True) as conn:
                migrate(conn, viewer_role=None)
                if self.args.layout == "plain":  # an upgraded database not converted by `events partition`
                    make_plain(conn)
        return url

    def simulator(self, rows: int) -> tuple[Simulator, SimulatorServer]:
        drop = tuple(f for f in self.catalog.types[self.args.type].fields if f not in self.columns)
        config = SimulatorConfig(
            types=(self.args.type,),
            days=1,
            rows=rows,
            today=date.fromisoformat(self.day),
            style=CsvStyle(drop_columns=drop),
            seed=7,
        )
        cache = self.base / f"sim-{rows}"
        cache.mkdir(exist_ok=True)
        sim = Simulator(config, cache_dir=cache)
        started = time.monotonic()
        sim.path_of(sim.reports()[0])  # render before timing anything
        self.render_seconds[rows] = time.monotonic() - started
        return sim, SimulatorServer(sim).start()

    # ---- the CLI --------------------------------------------------------------------------------

    def run_cli(self, db_url: str, server: SimulatorServer, *command: str) -> dict[str, Any]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SS_", "DB_", "DATABASE_"))}
        env.update(
            DATABASE_URL=db_url,
            SS_API_URL=server.api_url,
            SS_DOWNLOAD_URL=server.download_url,
            SS_API_KEY="demo-key",
            SS_API_SECRET="demo-secret",
            REQUEST_DELAY_SECONDS="0",
            LOG_LEVEL="WARNING",
            LOG_FORMAT="text",
            SS_WORK_DIR=str(self.base),
        )
        peak_file = self.base / "peak-rss"
        started = time.monotonic()
        process = subprocess.run(
            [sys.executable, "-c", RSS_WRAPPER, str(peak_file), *command], env=env, capture_output=True, check=False
        )
        wall = time.monotonic() - started
        code, stderr = process.returncode, process.stderr
        if code != 0:
            raise RuntimeError(f"{' '.join(command)} exited {code}: {stderr.decode()[-2000:]}")
        with psycopg.connect(db_url) as conn:
            timing = conn.execute(
                "SELECT download_seconds, load_seconds FROM ss_report_files"
                " ORDER BY finished_at DESC NULLS LAST LIMIT 1"
            ).fetchone()
            run = conn.execute(
                "SELECT EXTRACT(EPOCH FROM run_finished - run_started), events_ingested, rows_duplicate, rows_read,"
                " files_new FROM ss_ingestion_log ORDER BY id DESC LIMIT 1"
            ).fetchone()
        assert run is not None
        return {
            "wall": wall,
            "seconds": float(run[0]),
            "inserted": run[1],
            "duplicates": run[2],
            "rows_read": run[3],
            "files_new": run[4],
            "rss_mb": int(peak_file.read_text().split()[0]) / 1024,
            "tree_rss_mb": int(peak_file.read_text().split()[1]) / 1024,
            "download_seconds": timing[0] if timing else None,
            "load_seconds": timing[1] if timing else None,
        }

    def stop_autovacuum(self, url: str) -> None:
        """Autovacuum off for the tables a load reads (and the partitions of ss_events made so far; the
        benchmark's own server runs without autovacuum at all, so partitions made later stay unanalysed too)."""
        with psycopg.connect(url, autocommit=True) as conn:
            tables = [t for t in TABLES if t != "ss_events" or not partitions.is_partitioned(conn)]
            tables += [p.name for p in partitions.partitions(conn)]
            for table in tables:
                conn.execute(sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = off)").format(sql.Identifier(table)))

    @staticmethod
    def analysed(url: str) -> bool:
        """Whether ss_events has statistics (ANALYZE or autovacuum ran on it)."""
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT bool_or(last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL) FROM pg_stat_user_tables"
                " WHERE relname = 'ss_events' OR relname LIKE 'ss\\_events\\_p%%'"
            ).fetchone()
        return bool(row and row[0])

    # ---- measurements ---------------------------------------------------------------------------

    def rows_of(self, sim: Simulator) -> list[NormalizedRow]:
        path = sim.path_of(sim.reports()[0])
        with path.open("rb") as stream:
            reader = ReportCsv(stream)
            normalize = RowNormalizer(self.catalog.types[self.args.type], reader.header)
            rows = [normalize(cells_of(cells)) for cells in reader.records() if not isinstance(cells, CsvProblem)]
        return [row for row in rows if isinstance(row, NormalizedRow)]

    def copy_lines(self, sim: Simulator) -> tuple[int, bytes]:
        """The report's rows pre-formatted for ``COPY ss_events`` (the reference's input), and their count."""
        rows = self.rows_of(sim)
        prefix = f"{self.args.type}\t{sim.reports()[0].date.isoformat()}\t1\t"
        return len(rows), "".join(prefix + copy_line(row) + "\n" for row in rows).encode()

    def cpu_per_row(self, sim: Simulator) -> float:
        data = sim.path_of(sim.reports()[0]).read_bytes()
        best = float("inf")
        for _ in range(2):
            started = time.process_time()
            reader = ReportCsv(io.BytesIO(data))
            normalize = RowNormalizer(self.catalog.types[self.args.type], reader.header)
            count = 0
            for cells in reader.records():
                if isinstance(cells, CsvProblem):
                    continue
                row = normalize(cells_of(cells))
                if isinstance(row, NormalizedRow):
                    copy_line(row)
                count += 1
            best = min(best, (time.process_time() - started) / max(count, 1))
        return best * 1e6

    def reference(self, lines: bytes, rows: int) -> Measure:
        url = self.new_database("reference")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE ss_events_reference (LIKE ss_events INCLUDING ALL)")
            started = time.monotonic()
            with (
                conn.transaction(),
                conn.cursor().copy(
                    f"COPY ss_events_reference ({EVENT_COLUMNS}) FROM STDIN"  # type: ignore[arg-type]
                ) as copy,
            ):
                for offset in range(0, len(lines), 1 << 20):
                    copy.write(lines[offset : offset + (1 << 20)])
            seconds = time.monotonic() - started
        return Measure("reference COPY", rows, seconds, "pre-formatted rows, same columns and indexes, no dedup")

    def v1_write_path(self, sim: Simulator, rows: int) -> Measure:
        """v1.0.0's write path on the first ``rows`` rows of the file, into v1.0.0's schema (GIN index too):
        ``csv.DictReader`` over the decoded text, one ``INSERT ... ON CONFLICT DO NOTHING`` per row, one
        commit per file (seed-contract.md §9), with psycopg 3 instead of psycopg2."""
        url = self.new_database("v1", migrated=False)
        lines = sim.path_of(sim.reports()[0]).read_bytes().splitlines(keepends=True)[: rows + 1]
        with psycopg.connect(url) as conn:
            conn.execute(V1_SCHEMA)  # type: ignore[arg-type]
            conn.commit()
            started = time.monotonic()
            inserted, skipped = v1_insert_file(conn, self.args.type, sim.reports()[0].date, b"".join(lines), "utf-8")
            conn.commit()
            seconds = time.monotonic() - started
        records = inserted + skipped
        return Measure("v1.0.0 write path", records, seconds, "per-row INSERT into v1.0.0's schema")

    def prefill(self, url: str, lines: bytes, rows: int, target: int) -> float:
        """Fill ss_events with ``target`` rows shaped like the report's, on earlier dates (indexes rebuilt)."""
        started = time.monotonic()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TEMP TABLE seed (LIKE ss_events INCLUDING DEFAULTS)")
            with conn.cursor().copy(f"COPY seed ({EVENT_COLUMNS}) FROM STDIN") as copy:  # type: ignore[arg-type]
                for offset in range(0, len(lines), 1 << 20):
                    copy.write(lines[offset : offset + (1 << 20)])
            indexes = conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'ss_events'"
                " AND indexname LIKE 'idx_ss_events_%'"
            ).fetchall()
            for name, _ in indexes:
                conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
            days = max(self.args.scale_days, -(-target // rows))  # every earlier day gets its share
            per_day = -(-target // days)
            first = date.fromisoformat(self.day) - timedelta(days=days)
            partitions.ensure_range(conn, first, date.fromisoformat(self.day), "month")
            for day in range(1, days + 1):
                conn.execute(
                    "INSERT INTO ss_events (report_type, report_date, file_id, ip, port, asn, geo, hostname, tag,"
                    " severity, event_time, raw_data, event_hash)"
                    " SELECT report_type, report_date - %s, file_id, ip, port, asn, geo, hostname, tag, severity,"
                    " event_time - make_interval(days => %s), raw_data, md5(event_hash || %s) || md5(event_hash)"
                    " FROM seed LIMIT %s",
                    (day, day, day, max(0, min(per_day, rows, target - (day - 1) * per_day))),
                )
            for _, definition in indexes:  # a partitioned table's index covers its partitions'
                conn.execute(definition.replace(" ON ONLY ", " ON "))  # type: ignore[arg-type]
            conn.execute(
                "INSERT INTO ss_findings (report_type, finding_key, first_seen, last_seen, times_seen, seen_days)"
                " SELECT report_type, ss_finding_key(report_type, ip, port, raw_data, event_hash), MIN(report_date),"
                " MAX(report_date), COUNT(*), ss_days_bits(MIN(report_date), array_agg(report_date))"
                " FROM ss_events GROUP BY 1, 2"
            )
            conn.execute("VACUUM ANALYZE ss_events")
            conn.execute("VACUUM ANALYZE ss_findings")
        return time.monotonic() - started

    # ---- the run --------------------------------------------------------------------------------

    def run(self) -> int:
        args = self.args
        self.start()
        sim, server = self.simulator(args.rows)
        try:
            count, lines = self.copy_lines(sim)
            self.figures["bytes_per_row"] = round(sim.path_of(sim.reports()[0]).stat().st_size / args.rows)
            self.figures["columns"] = len(self.columns)
            self.figures["cpu_us_per_row"] = round(self.cpu_per_row(sim), 1)

            rendered = self.render_seconds[args.rows]
            render = Measure("simulator", args.rows, rendered, "renders the test report (input, not the pipeline)")
            reference = self.reference(lines, count)
            self.results += [render, reference]
            if args.v1_rows:
                self.results.append(self.v1_write_path(sim, min(args.v1_rows, args.rows)))

            url = self.new_database("fresh")
            self.stop_autovacuum(url)
            fresh_run = self.run_cli(url, server, "backfill", "0", "--until", self.day)
            self._check(fresh_run, inserted=args.rows, what="fresh")
            if args.verbose:
                print("fresh run:", fresh_run, file=sys.stderr)
            fresh = Measure("fresh ingest", args.rows, fresh_run["seconds"], "empty database, end to end")
            self.results.append(fresh)

            assert not self.analysed(url), "ss_events has statistics before the second file"
            second_run = self.second_file(url)
            self.results.append(
                Measure("2nd file no stats", args.rows, second_run["seconds"], "same type, day, rows; never analysed")
            )

            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("ANALYZE")
                conn.execute("DELETE FROM ss_report_files WHERE file_name = %s", (sim.reports()[0].file,))
            downloads = sim.counters.downloads_started()
            dup_run = self.run_cli(url, server, "backfill", "0", "--until", self.day)
            self._check(dup_run, inserted=0, what="duplicates")
            assert sim.counters.downloads_started() == downloads + 1, "the duplicate run did not re-download"
            self.results.append(
                Measure("duplicates", args.rows, dup_run["seconds"], "same file re-downloaded, analysed")
            )

            calls, downloads = sim.counters.api_calls(), sim.counters.downloads_started()
            idle_run = self.run_cli(url, server, "once")
            idle_downloads = sim.counters.downloads_started() - downloads
            idle_calls = sim.counters.api_calls() - calls
            self.figures.update(idle_downloads=idle_downloads, idle_api_calls=idle_calls)
            self.results.append(
                Measure(
                    "idle cycle",
                    0,
                    idle_run["seconds"],
                    f"{idle_calls} API call(s), {idle_downloads} downloads",
                    {"wall": idle_run["wall"]},
                )
            )

            scale_url = self.new_database("scale")
            prefill_seconds = self.prefill(scale_url, lines, count, args.scale_rows)
            self.stop_autovacuum(scale_url)
            scale_run = self.run_cli(scale_url, server, "backfill", "0", "--until", self.day)
            self._check(scale_run, inserted=args.rows, what="scale")
            self.results.append(
                Measure(
                    "scale ingest",
                    args.rows,
                    scale_run["seconds"],
                    f"into {args.scale_rows:,} stored rows (prefill {prefill_seconds:.0f} s)",
                )
            )
            stale_run = self.second_file(scale_url)
            self.results.append(
                Measure("2nd file stale", args.rows, stale_run["seconds"], "the same on top, analysed before the day")
            )

            small_sim, small_server = self.simulator(args.rss_rows)
            try:
                small_run = self.run_cli(self.new_database("rss"), small_server, "backfill", "0", "--until", self.day)
                self._check(small_run, inserted=args.rss_rows, what="rss")
            finally:
                small_server.stop()
                small_sim.close()
            self.figures["rss_mb"] = {args.rss_rows: round(small_run["rss_mb"]), args.rows: round(fresh_run["rss_mb"])}
            self.figures["tree_rss_mb"] = {
                args.rss_rows: round(small_run["tree_rss_mb"]),
                args.rows: round(fresh_run["tree_rss_mb"]),
            }
        finally:
            server.stop()
            sim.close()
        return 0

    def second_file(self, url: str) -> dict[str, Any]:
        """Load a second file of the report's type and day with the same rows (an ``-asn`` variant beside the
        ``-geo`` file), served by a simulator of its own so that the other measures see one file."""
        sim, server = self.simulator(self.args.rows)
        try:
            first = sim.reports()[0]
            sim.path_of(sim.publish(first.type, first.date, variant="asn", seed=first.seed))
            run = self.run_cli(url, server, "backfill", "0", "--until", self.day)
            self._check(run, inserted=0, what="second file")
            assert sim.counters.downloads_started() == 1, "the first file was downloaded again"
        finally:
            server.stop()
            sim.close()
        return run

    @staticmethod
    def _check(run: dict[str, Any], *, inserted: int, what: str) -> None:
        if run["inserted"] != inserted or run["rows_read"] != run["inserted"] + run["duplicates"]:
            raise RuntimeError(f"{what}: expected {inserted} inserted, got {run}")

    # ---- report ---------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        by_name = {m.name: m for m in self.results}
        reference = by_name["reference COPY"].rate
        fresh = by_name["fresh ingest"].rate
        second = by_name["2nd file no stats"].rate
        stale = by_name["2nd file stale"].rate
        rss = self.figures["rss_mb"]
        tree = self.figures["tree_rss_mb"]
        small, large = (rss[k] for k in sorted(rss))
        tree_small, tree_large = (tree[k] for k in sorted(tree))
        return {
            "rows": self.args.rows,
            "type": self.args.type,
            **{k: v for k, v in self.figures.items() if k not in ("rss_mb", "tree_rss_mb")},
            "rss_mb": {str(k): v for k, v in rss.items()},
            "tree_rss_mb": {str(k): v for k, v in tree.items()},
            "measures": [
                {
                    "name": m.name,
                    "rows": m.rows,
                    "seconds": round(m.seconds, 3),
                    "rows_per_s": round(m.rate),
                    "note": m.note,
                    **m.extra,
                }
                for m in self.results
            ],
            "ratios": {
                "fresh/copy": round(fresh / reference, 2),
                "fresh/v1": round(fresh / by_name["v1.0.0 write path"].rate, 1)
                if "v1.0.0 write path" in by_name
                else None,
                "dup/copy": round(by_name["duplicates"].rate / reference, 2),
                "second/fresh": round(second / fresh, 2),
                "second/copy": round(second / reference, 2),
                "stale/scale": round(stale / by_name["scale ingest"].rate, 2),
                "scale/fresh": round(by_name["scale ingest"].rate / fresh, 2),
                "rss_growth": round(large / small - 1, 2) if small else None,
                "tree_rss_growth": round(tree_large / tree_small - 1, 2) if tree_small else None,
            },
            "rss_line": f"{small}/{large}",
            "tree_rss_line": f"{tree_small}/{tree_large}",
        }

    def print(self, summary: dict[str, Any]) -> None:
        print(
            f"PostgreSQL {summary['server_version']}: "
            f"{summary['rows']:,} {summary['type']} rows, {summary['columns']} columns, "
            f"{summary['bytes_per_row']} bytes/row; Python parse+normalise+hash+format "
            f"{summary['cpu_us_per_row']} us/row"
        )
        print(f"{'measure':<18} {'rows':>10} {'seconds':>9} {'rows/s':>9}  note")
        for m in summary["measures"]:
            print(f"{m['name']:<18} {m['rows']:>10,} {m['seconds']:>9.2f} {m['rows_per_s']:>9,}  {m['note']}")
        print(
            "peak RSS of the ingesting process: "
            + ", ".join(f"{k} rows: {v} MB" for k, v in summary["rss_mb"].items())
            + "; with its parse worker: "
            + ", ".join(f"{k} rows: {v} MB" for k, v in summary["tree_rss_mb"].items())
        )
        r = summary["ratios"]
        if r["fresh/v1"] is not None:
            print(f"end to end {r['fresh/v1']}x v1.0.0's write path")
        print(
            f"fresh/copy={r['fresh/copy']} dup/copy={r['dup/copy']} second/fresh={r['second/fresh']} "
            f"scale/fresh={r['scale/fresh']} stale/scale={r['stale/scale']} "
            f"rss_mb={summary['rss_line']} tree_rss_mb={summary['tree_rss_line']} "
            f"idle_downloads={summary['idle_downloads']}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000, help="rows of the measured report (default 50000)")
    parser.add_argument("--rss-rows", type=int, default=None, help="the smaller report for the RSS comparison")
    parser.add_argument("--scale-rows", type=int, default=None, help="rows already stored for the scale run")
    parser.add_argument("--type", default="scan_ssl", help="report type (default scan_ssl)")
    parser.add_argument("--columns", default="30", help="'30' (default scan_ssl shape), N (first N), or 'all'")
    parser.add_argument("--full", action="store_true", help="1M rows, RSS at 100k and 1M, scale on 5M rows")
    parser.add_argument("--smoke", action="store_true", help="tiny run that only proves the pipeline works")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--database-url", help="a server to use (a role that may CREATE DATABASE)")
    parser.add_argument("--work-dir", help="where to put the embedded server and files (default /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--verbose", action="store_true", help="print the raw figures of each CLI run")
    parser.add_argument("--v1-rows", type=int, default=20_000, help="rows for v1.0.0's write path (0 = skip)")
    parser.add_argument("--scale-days", type=int, default=90, help="earlier report days the scale rows spread over")
    parser.add_argument(
        "--layout", choices=("partitioned", "plain"), default="partitioned", help="ss_events of the measured databases"
    )
    args = parser.parse_args(argv)
    if args.full:
        args.rows, args.rss_rows, args.scale_rows = 1_000_000, args.rss_rows or 100_000, args.scale_rows or 5_000_000
    if args.smoke:
        args.rows, args.rss_rows, args.scale_rows = 2_000, args.rss_rows or 500, args.scale_rows or 10_000
        args.v1_rows = min(args.v1_rows, 500)
    args.rss_rows = args.rss_rows or max(args.rows // 10, 100)
    args.scale_rows = args.scale_rows or args.rows * 10
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    try:
        bench.run()
        summary = bench.summary()
    except PgDistError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        bench.close()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        bench.print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
