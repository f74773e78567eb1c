"""Time the operator commands' queries on a database of N synthetic events.

    .venv/bin/python bench/queries.py                  # 5,000,000 events in a fresh embedded PostgreSQL
    .venv/bin/python bench/queries.py --rows 20000     # a few seconds (CI)
    DATABASE_URL=postgresql://... .venv/bin/python bench/queries.py --rows 1000000   # an empty external db
    PG_MAJOR=15 .venv/bin/python bench/queries.py      # the embedded server of another major (or PG_BINDIR=...)

The data: ``--days`` report dates (default 30) ending today; each day P = rows/days events, one per
"subject" (report type + IP + port). The subjects of a day are a sliding window: 2 % of them are new
each day and 2 % drop out, as in real feeds, so ``new`` over one day finds about 2 % of a day's events.
IPs are spread over 10.0.0.0/10 (and 2001:db8::/32 for one subject in ten), one AS number per /16.
``ss_findings``, the ledger, ``ss_reports`` and the audit log are filled to match.

Each case runs ``--repeat`` times with the ingestor's own functions (the code the commands run); the
table shows the median seconds for the first 100 rows (the terminal default, raw_data included) and for
streaming every match (as piped CSV output reads them: without raw_data), the number of matches and the
plan's scans (``| all:`` when streaming everything is planned differently). IRIS Data Explorer's own
queries (its stats card, report types, default page and a case's correlation, seed-contract.md §10) are
timed the same way. At the end the oldest ``--prune-days`` dates are pruned for real (dropping the
partitions they fill, deleting in the one the cutoff cuts), with the WAL it wrote, and an insert of
``--ingest-rows`` rows is timed with and without a prune running.

``--layout plain`` measures the same on an unpartitioned ss_events (a database upgraded in place and not
converted by ``events partition``), for the side-by-side comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ingestor.catalog import load_catalog  # noqa: E402
from ingestor.db import partitions  # noqa: E402
from ingestor.db.connect import EMBEDDED_SETTINGS, Database  # noqa: E402
from ingestor.db.migrate import migrate  # noqa: E402
from ingestor.ops import filters as flt  # noqa: E402
from ingestor.ops.inventory import collect_types  # noqa: E402
from ingestor.ops.retention import prune  # noqa: E402
from ingestor.ops.search import new_findings, new_params, plan_nodes, plan_of, search_events  # noqa: E402
from ingestor.ops.status import collect_status  # noqa: E402

TYPES = (
    "scan_ssl",
    "scan_rdp",
    "scan_smb",
    "scan_http",
    "scan_telnet",
    "scan_ssh",
    "scan_vnc",
    "scan_ntp",
    "scan_snmp",
    "scan_mysql",
    "scan_redis",
    "device_id",
    "event4_sinkhole",
    "event4_sinkhole_http",
    "blocklist",
    "scan_http_vulnerable",
)
CHURN = 0.02
IP_SPACE = 1 << 22
HASH = 2654435761
BANNERS = 5000

FILL_DAY = """
INSERT INTO ss_events (report_type, report_date, ip, port, asn, geo, hostname, tag, severity, event_time,
                       raw_data, event_hash)
SELECT (%(types)s::text[])[1 + s %% %(ntypes)s], %(day)s::date, ip, port, 64500 + o / 65536, geo, hostname, tag,
       (%(severities)s::text[])[1 + s %% %(ntypes)s], event_time,
       jsonb_build_object('timestamp', to_char(event_time, 'YYYY-MM-DD HH24:MI:SS'), 'ip', host(ip),
                          'port', port::text, 'asn', (64500 + o / 65536)::text, 'geo', geo,
                          'hostname', COALESCE(hostname, ''), 'tag', tag,
                          'banner', 'Server: demo-' || (s %% %(banners)s) || ' (bench)'),
       encode(sha256(convert_to(%(day)s::text || ':' || j, 'UTF8')), 'hex')
FROM (SELECT j, s, o,
             CASE WHEN s %% 10 = 9 THEN '2001:db8::'::inet + o ELSE '10.0.0.0'::inet + o END AS ip,
             (ARRAY[22, 23, 80, 443, 445, 3389, 8080, 161])[1 + (s / %(ntypes)s) %% 8] AS port,
             (ARRAY['NL', 'DE', 'US', 'FR'])[1 + s %% 4] AS geo,
             CASE WHEN s %% 2 = 0
                  THEN 'h' || s || '.' || (ARRAY['example.com', 'example.net', 'example.org'])[1 + s %% 3] END
               AS hostname,
             (ARRAY['ssl-poodle', 'ssl-freak;ssl-poodle', 'rdp', 'mirai', 'openssh', 'vnc'])[1 + s %% 6] AS tag,
             %(day)s::timestamptz + (j %% 86400) * interval '1 second' AS event_time
      FROM (SELECT j, j + %(offset)s AS s, ((j + %(offset)s) * %(hash)s) %% %(space)s AS o
            FROM generate_series(0::bigint, %(per_day)s - 1) AS j) numbered) subjects
ORDER BY j
"""

FILL_FINDINGS = """
INSERT INTO ss_findings (report_type, finding_key, first_seen, last_seen, times_seen, first_event_hash,
                         last_event_hash, seen_days)
SELECT report_type, finding_key, MIN(report_date), MAX(report_date), COUNT(*),
       (array_agg(event_hash ORDER BY report_date, event_hash))[1],
       (array_agg(event_hash ORDER BY report_date DESC, event_hash))[1],
       ss_days_bits(MIN(report_date), array_agg(report_date))
FROM (SELECT report_type, report_date, event_hash, ss_finding_key(report_type, ip, port, raw_data, event_hash)
             AS finding_key
      FROM ss_events) keyed
GROUP BY 1, 2
"""

FILL_LEDGER = """
INSERT INTO ss_report_files (source, source_key, report_type, report_date, file_name, subscription, status,
                             attempts, rows_read, rows_inserted, known_type, started_at, finished_at)
SELECT 'api', 'api:bench:' || report_type || ':' || report_date, report_type, report_date,
       report_date || '-' || report_type || '-bench-geo.csv', 'bench', 'loaded', 1, events, events, true,
       report_date + interval '1 day 2 hours', report_date + interval '1 day 2 hours 1 minute'
FROM bench_slices
"""

FILL_REPORTS = """
INSERT INTO ss_reports (report_type, report_date, event_count) SELECT report_type, report_date, events FROM bench_slices
"""

FILL_AUDIT = """
INSERT INTO ss_ingestion_log (run_started, run_finished, status, kind, reports_found, events_ingested, events_skipped,
                              files_new, files_loaded, rows_read)
SELECT t, t + interval '20 seconds', 'success', 'cycle', 48, 0, 0, 0, 0, 0
FROM generate_series(%(start)s::timestamptz, NOW() - interval '15 minutes', interval '15 minutes') AS t
"""


@dataclass(frozen=True)
class Dataset:
    rows: int
    days: int
    today: date
    per_day: int
    churn: int

    @property
    def first_day(self) -> date:
        return self.today - timedelta(days=self.days - 1)

    def subject_ip(self, subject: int) -> str:
        offset = (subject * HASH) % IP_SPACE
        if subject % 10 == 9:
            return f"2001:db8::{offset >> 16:x}:{offset & 0xFFFF:x}"
        return f"10.{offset >> 16}.{(offset >> 8) & 0xFF}.{offset & 0xFF}"

    def subject_hostname(self, subject: int) -> str | None:
        domains = ("example.com", "example.net", "example.org")
        return f"h{subject}.{domains[subject % 3]}" if subject % 2 == 0 else None

    def subject_asn(self, subject: int) -> int:
        return 64500 + ((subject * HASH) % IP_SPACE) // 65536


def fill(conn: psycopg.Connection[Any], rows: int, days: int, today: date, *, progress: bool = False) -> Dataset:
    """Fill an empty, migrated database with ``rows`` synthetic events (and findings, ledger, audit)."""
    per_day = max(1, rows // days)
    churn = max(1, int(per_day * CHURN))
    data = Dataset(rows=per_day * days, days=days, today=today, per_day=per_day, churn=churn)
    catalog = load_catalog()
    severities = [catalog.types[name].default_severity for name in TYPES]
    partitions.ensure_range(conn, data.first_day, today, "month")
    dropped = _drop_secondary_indexes(conn)
    for index in range(days):
        day = data.first_day + timedelta(days=index)
        started = time.monotonic()
        conn.execute(
            FILL_DAY,
            {
                "types": list(TYPES),
                "ntypes": len(TYPES),
                "severities": severities,
                "day": day,
                "offset": index * churn,
                "hash": HASH,
                "space": IP_SPACE,
                "banners": BANNERS,
                "per_day": per_day,
            },
        )
        if progress:
            print(f"  {day}: {per_day:,} events in {time.monotonic() - started:.1f} s", file=sys.stderr)
    _timed(progress, "indexes", lambda: _recreate(conn, dropped))
    _timed(progress, "findings", lambda: conn.execute(FILL_FINDINGS))
    conn.execute(
        "CREATE TEMP TABLE bench_slices AS SELECT report_type, report_date, COUNT(*) AS events"
        " FROM ss_events GROUP BY 1, 2"
    )
    conn.execute(FILL_LEDGER)
    conn.execute(FILL_REPORTS)
    conn.execute("DROP TABLE bench_slices")
    conn.execute(FILL_AUDIT, {"start": datetime.combine(data.first_day, datetime.min.time(), UTC)})
    conn.execute(
        "INSERT INTO ss_report_files (source, source_key, report_type, report_date, file_name, status, attempts,"
        " error, known_type, finished_at) VALUES"
        " ('api', 'api:bench:failed', 'scan_ssl', %(day)s, 'bench-failed.csv', 'failed', 3,"
        "  'download of bench-failed.csv: gave up after 5 attempts: HTTP 503', NULL, NOW()),"
        " ('api', 'api:bench:unknown', 'scan_futureproto', %(day)s, 'bench-unknown.csv', 'loaded', 1, NULL, false,"
        "  NOW())",
        {"day": today},
    )
    _timed(progress, "vacuum analyze", lambda: conn.execute("VACUUM ANALYZE"))
    return data


def _timed(progress: bool, label: str, action: Callable[[], object]) -> None:
    started = time.monotonic()
    action()
    if progress:
        print(f"  {label}: {time.monotonic() - started:.1f} s", file=sys.stderr)


def _drop_secondary_indexes(conn: psycopg.Connection[Any]) -> list[str]:
    """Drop ss_events' indexes except the primary key (a bulk load is faster without); return their DDL."""
    constraints = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = 'ss_events'::regclass AND contype = 'u'"
    ).fetchall()
    indexes = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'ss_events' AND indexname NOT IN"
        " (SELECT conname FROM pg_constraint WHERE conrelid = 'ss_events'::regclass)"
    ).fetchall()
    ddl = []
    for name, definition in constraints:
        conn.execute(sql.SQL("ALTER TABLE ss_events DROP CONSTRAINT {}").format(sql.Identifier(name)))
        ddl.append(f"ALTER TABLE ss_events ADD CONSTRAINT {sql.Identifier(name).as_string(conn)} {definition}")
    for name, definition in indexes:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        ddl.append(definition.replace(" ON ONLY ", " ON "))  # a partitioned table's index covers its partitions
    return ddl


def _recreate(conn: psycopg.Connection[Any], ddl: list[str]) -> None:
    conn.execute("SET maintenance_work_mem = '512MB'")
    for statement in ddl:
        conn.execute(statement.encode())


# ---- cases ----------------------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    run: Callable[[psycopg.Connection[Any], int | None], int]
    """Run the query with a row limit (None = all) and return the number of rows."""
    plan: Callable[[psycopg.Connection[Any]], str] | None = None


def _count(rows: Iterator[Any]) -> int:
    return sum(1 for _ in rows)


def search_case(name: str, **filters: Any) -> Case:
    event_filter = flt.EventFilter(**filters)

    def run(conn: psycopg.Connection[Any], limit: int | None) -> int:
        return _count(search_events(conn, event_filter, limit, with_raw=limit is not None))

    def plan(conn: psycopg.Connection[Any]) -> str:
        first = _describe_plan(plan_nodes(conn, "search_events", event_filter.params(101)))
        every = _describe_plan(plan_nodes(conn, "search_events", event_filter.params(None)))
        return first if first == every else f"{first} | all: {every}"

    return Case(name, run, plan)


def new_case(name: str, since: date, until: date) -> Case:
    def run(conn: psycopg.Connection[Any], limit: int | None) -> int:
        return _count(new_findings(conn, flt.EventFilter(), since, until, limit, with_raw=limit is not None))

    def plan(conn: psycopg.Connection[Any]) -> str:
        first = _describe_plan(plan_nodes(conn, "new_findings", new_params(flt.EventFilter(), since, until, 101)))
        every = _describe_plan(plan_nodes(conn, "new_findings", new_params(flt.EventFilter(), since, until, None)))
        return first if first == every else f"{first} | all: {every}"

    return Case(name, run, plan)


def _describe_plan(nodes: list[dict[str, str]]) -> str:
    scans = []
    for node in nodes:
        kind = node["Node Type"]
        if "Scan" not in kind or kind == "Bitmap Heap Scan":
            continue
        target = node.get("Index Name") or node.get("Relation Name") or ""
        target = re.sub(r"ss_events_p\d{8}", "ss_events_p*", target)  # every partition alike
        scans.append(f"{kind.replace(' Scan', '').replace('Index Only', 'IndexOnly')}:{target}")
    return ", ".join(dict.fromkeys(scans))


IRIS_STATS = "SELECT COUNT(*), COUNT(DISTINCT report_type), MIN(report_date), MAX(report_date) FROM ss_events"
IRIS_TYPES = "SELECT DISTINCT report_type FROM ss_events ORDER BY report_type"
IRIS_PAGE = (
    "SELECT id, report_type, report_date, ip, port, asn, geo, hostname, tag, severity, raw_data, ingested_at"
    " FROM ss_events ORDER BY report_date DESC NULLS LAST LIMIT 50 OFFSET 0"
)
IRIS_CASE = (
    "SELECT id, report_type, report_date, ip, port, asn, geo, hostname, tag, severity, raw_data, ingested_at"
    " FROM ss_events WHERE (ip = ANY(%s::inet[]) OR hostname = ANY(%s) OR asn = ANY(%s::int[]))"
    " ORDER BY report_date DESC NULLS LAST"
)


def iris_case(name: str, query: str, params: tuple[Any, ...] = ()) -> Case:
    def run(conn: psycopg.Connection[Any], limit: int | None) -> int:
        text = query + (f" LIMIT {limit}" if limit is not None and "LIMIT" not in query else "")
        return len(conn.execute(text.encode(), params).fetchall())

    def plan(conn: psycopg.Connection[Any]) -> str:
        return _describe_plan(plan_of(conn, query, params))  # type: ignore[arg-type]  # IRIS's own SQL text

    return Case(name, run, plan)


def build_cases(data: Dataset, db: Database) -> list[Case]:
    subject = 2
    ip = data.subject_ip(subject)
    v6 = data.subject_ip(9)
    net24 = ip.rsplit(".", 1)[0] + ".0/24"
    net16 = ".".join(ip.split(".")[:2]) + ".0.0/16"
    last = data.today
    week = last - timedelta(days=6)
    host = data.subject_hostname(subject)
    catalog = load_catalog()

    def status(conn: psycopg.Connection[Any], limit: int | None) -> int:
        return len(collect_status(conn, days=7)["runs"])

    def types(conn: psycopg.Connection[Any], limit: int | None) -> int:
        return len(collect_types(conn, catalog)["types"])

    def dry_run(conn: psycopg.Connection[Any], limit: int | None) -> int:
        return prune(db, max(1, data.days // 2), dry_run=True, today=data.today).events

    return [
        search_case(f"search --ip {ip}", network=flt.parse_network(ip)),
        search_case(f"search --ip {net24}", network=flt.parse_network(net24)),
        search_case(f"search --ip {net16}", network=flt.parse_network(net16)),
        search_case(f"search --ip {v6.rsplit(':', 1)[0]}:0/112", network=flt.parse_network(v6 + "/112")),
        search_case(f"search --asn {data.subject_asn(subject)}", asns=(data.subject_asn(subject),)),
        search_case(f"search --hostname {host}", hostname=host),
        search_case("search --hostname '*.example.org'", hostname_suffix=".example.org"),
        search_case(f"search --type scan_rdp --since {week}", types=("scan_rdp",), since=week, until=last),
        search_case("search --severity critical", severity="critical"),
        search_case("search --severity critical --since today", severity="critical", since=last),
        search_case("search --tag freak", tag="freak"),
        search_case("search --text demo-4242 (rare)", text="demo-4242 "),
        search_case(f"search --text demo-4242 --ip {net16}", text="demo-4242 ", network=flt.parse_network(net16)),
        new_case("new --since today (1 day)", last, last),
        new_case(f"new --since {week} (7 days)", week, last),
        Case("status --days 7", status),
        Case("types (exact counts)", types),
        Case(f"prune --older-than {max(1, data.days // 2)} --dry-run", dry_run),
        iris_case("IRIS: stats card (counts, dates)", IRIS_STATS),
        iris_case("IRIS: report types", IRIS_TYPES),
        iris_case("IRIS: default page (50 newest)", IRIS_PAGE),
        iris_case(
            "IRIS: case correlation (ip, hostname, asn)",
            IRIS_CASE,
            ([ip, data.subject_ip(3)], [host], [data.subject_asn(5)]),
        ),
    ]


def measure(conn: psycopg.Connection[Any], case: Case, repeat: int) -> dict[str, Any]:
    def timed(limit: int | None) -> tuple[float, int]:
        times, count = [], 0
        for _ in range(repeat):
            started = time.perf_counter()
            count = case.run(conn, limit)
            times.append(time.perf_counter() - started)
            if times[-1] > 5:  # a long stream: once is enough
                break
        return statistics.median(times), count

    print(f"  {case.name}", file=sys.stderr)

    first, _ = timed(100)
    every, total = timed(None)
    return {
        "case": case.name,
        "first_100_s": round(first, 4),
        "all_s": round(every, 4),
        "rows": total,
        "plan": case.plan(conn) if case.plan else "",
    }


def measure_prune(
    db: Database, conn: psycopg.Connection[Any], data: Dataset, days: int, ingest_rows: int
) -> dict[str, Any]:
    """Prune the oldest ``days`` dates for real; time an insert alone and while the prune runs."""
    older_than = data.days - 1 - days
    baseline = _timed_insert(conn, data.today + timedelta(days=1), ingest_rows)
    outcome: dict[str, Any] = {}

    def run() -> None:
        with psycopg.connect(db.conninfo, autocommit=True) as probe:
            before = probe.execute("SELECT pg_current_wal_lsn()").fetchone()
            outcome["result"] = prune(db, older_than, today=data.today)
            after = probe.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", (before[0] if before else None,))
            row = after.fetchone()
            outcome["wal_bytes"] = int(row[0]) if row else None

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(0.2)
    during = _timed_insert(conn, data.today + timedelta(days=2), ingest_rows)
    worker.join()
    result = outcome["result"]
    wal = outcome.get("wal_bytes")
    return {
        "events_deleted": result.events,
        "partitions_dropped": len(result.partitions),
        "prune_s": round(result.seconds, 2),
        "wal_mb_while_pruning": round(wal / 2**20, 1) if wal is not None else None,
        "rows_per_s": round(result.events / result.seconds) if result.seconds else None,
        "batches": result.batches,
        "longest_batch_s": round(result.max_batch_seconds, 3),
        f"insert_{ingest_rows}_rows_alone_s": round(baseline, 3),
        f"insert_{ingest_rows}_rows_during_prune_s": round(during, 3),
        "status": result.status,
    }


def _timed_insert(conn: psycopg.Connection[Any], day: date, rows: int) -> float:
    catalog = load_catalog()
    started = time.perf_counter()
    conn.execute(
        FILL_DAY,
        {
            "types": list(TYPES),
            "ntypes": len(TYPES),
            "severities": [catalog.types[name].default_severity for name in TYPES],
            "day": day,
            "offset": 0,
            "hash": HASH,
            "space": IP_SPACE,
            "banners": BANNERS,
            "per_day": rows,
        },
    )
    return time.perf_counter() - started


def make_plain(conn: psycopg.Connection[Any]) -> None:
    """Turn an empty partitioned ss_events into the plain table of an upgraded, unconverted database (the
    columns and indexes of migration 5, before migration 7)."""
    conn.execute("CREATE TABLE ss_events_plain (LIKE ss_events INCLUDING DEFAULTS)")
    conn.execute("ALTER SEQUENCE ss_events_id_seq OWNED BY NONE")
    conn.execute("DROP TABLE ss_events")
    conn.execute("ALTER TABLE ss_events_plain RENAME TO ss_events")
    conn.execute("ALTER SEQUENCE ss_events_id_seq OWNED BY ss_events.id")
    conn.execute("ALTER TABLE ss_events ADD CONSTRAINT ss_events_pkey PRIMARY KEY (id)")
    conn.execute(
        "CREATE UNIQUE INDEX ss_events_report_type_report_date_event_hash_key"
        " ON ss_events (report_date DESC NULLS LAST, report_type, event_hash)"
    )
    for column in ("ip", "asn", "hostname"):
        conn.execute(
            sql.SQL("CREATE INDEX {} ON ss_events ({})").format(
                sql.Identifier(f"idx_ss_events_{column}"), sql.Identifier(column)
            )
        )


# ---- main -----------------------------------------------------------------------------------------------


@contextmanager
def database(keep: bool) -> Iterator[str]:
    """DATABASE_URL's database, else a fresh embedded server in a temporary directory."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    from ingestor.db.embedded import EmbeddedPostgres

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from fixtures.pgdist import use_requested_major

    use_requested_major()
    base = Path(tempfile.mkdtemp(prefix="ssi-bench-"))
    base.chmod(0o755)
    server = EmbeddedPostgres(base / "pgdata", db_name="bench", settings={**EMBEDDED_SETTINGS, "fsync": "off"})
    try:
        yield server.start()
    finally:
        server.stop()
        if keep:
            print(f"data directory kept: {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)


def print_table(results: list[dict[str, Any]]) -> None:
    header = f"{'case':<48} {'first 100 s':>11} {'all s':>9} {'rows':>10}  plan"
    print(header)
    print("-" * len(header))
    for item in results:
        print(
            f"{item['case'][:48]:<48} {item['first_100_s']:>11.4f} {item['all_s']:>9.4f} {item['rows']:>10,}  "
            f"{item['plan']}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5_000_000, help="events to generate (default 5,000,000)")
    parser.add_argument("--days", type=int, default=30, help="report dates (default 30)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median is shown (default 3)")
    parser.add_argument("--prune-days", type=int, default=3, help="oldest dates pruned at the end (0: none)")
    parser.add_argument("--ingest-rows", type=int, default=20_000, help="rows inserted to time ingestion")
    parser.add_argument("--keep", action="store_true", help="keep the embedded data directory")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--layout", choices=("partitioned", "plain"), default="partitioned", help="ss_events layout")
    args = parser.parse_args(argv)
    if args.rows < args.days or args.days < 2:
        parser.error("--rows must be at least --days, and --days at least 2")
    today = datetime.now(UTC).date()
    with database(args.keep) as url, Database(url) as db, psycopg.connect(url, autocommit=True) as conn:
        migrate(conn, viewer_role=None)
        (existing,) = conn.execute("SELECT EXISTS (SELECT 1 FROM ss_events)").fetchone() or (False,)
        if existing:
            print("the database already holds events: give DATABASE_URL of an empty database", file=sys.stderr)
            return 2
        if args.layout == "plain":
            make_plain(conn)
        print(f"filling {args.rows:,} events over {args.days} days ...", file=sys.stderr)
        started = time.monotonic()
        data = fill(conn, args.rows, args.days, today, progress=True)
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()
        print(f"filled in {time.monotonic() - started:.0f} s; database {size[0] if size else '?'}", file=sys.stderr)
        results = [measure(conn, case, args.repeat) for case in build_cases(data, db)]
        pruned = measure_prune(db, conn, data, args.prune_days, args.ingest_rows) if args.prune_days else None
    if args.json:
        print(json.dumps({"rows": data.rows, "days": data.days, "cases": results, "prune": pruned}, indent=2))
        return 0
    print(f"\n{data.rows:,} events, {data.days} report dates, {data.per_day:,} per day, {data.churn:,} new per day")
    print_table(results)
    if pruned:
        print("\nprune of the oldest dates (batched DELETE) while an insert runs:")
        for key, value in pruned.items():
            print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
