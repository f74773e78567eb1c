"""What each index set costs a load: COPY throughput and WAL volume, same rows, same server, same run.

    python bench/indexes.py                 100k scan_ssl-shaped rows (~750 B/row CSV)
    python bench/indexes.py --rows 20000    smaller
    PG_MAJOR=15 python bench/indexes.py     on another PostgreSQL major (or PG_BINDIR=..., --database-url=...)

Index sets: v1.0.0's nine (with the GIN index on raw_data), v1.0.0's without the GIN index, ours (the
unique key, ip, asn, report_date, hostname), the primary and unique keys only, and ours plus the pg_trgm
GIN index on raw_data::text that IRIS Data Explorer's ILIKE search could use.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import psycopg
from ingest import EVENT_COLUMNS, Bench, parse_args
from psycopg import sql

OURS = [
    "CREATE INDEX ON {t} (ip)",
    "CREATE INDEX ON {t} (asn)",
    "CREATE INDEX ON {t} (report_date)",
    "CREATE INDEX ON {t} (hostname)",
]
V1_NO_GIN = [
    "CREATE INDEX ON {t} (ip)",
    "CREATE INDEX ON {t} (asn)",
    "CREATE INDEX ON {t} (geo)",
    "CREATE INDEX ON {t} (tag)",
    "CREATE INDEX ON {t} (severity)",
    "CREATE INDEX ON {t} (report_date)",
    "CREATE INDEX ON {t} (report_type)",
]
SETS: dict[str, list[str]] = {
    "v1.0.0 (9 indexes, GIN on raw_data)": [*V1_NO_GIN, "CREATE INDEX ON {t} USING GIN (raw_data)"],
    "v1.0.0 without the GIN index": V1_NO_GIN,
    "ours (unique key, ip, asn, report_date, hostname)": OURS,
    "primary and unique keys only": [],
    "ours + pg_trgm GIN on raw_data::text": [*OURS, "CREATE INDEX ON {t} USING GIN ((raw_data::text) gin_trgm_ops)"],
}


def measure(url: str, lines: bytes, indexes: list[str]) -> tuple[float, int]:
    """Seconds and WAL bytes of one COPY of ``lines`` into a fresh table with the given secondary indexes."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        conn.execute("DROP TABLE IF EXISTS ss_events_bench")
        conn.execute(
            "CREATE TABLE ss_events_bench (LIKE ss_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS,"
            " PRIMARY KEY (id), UNIQUE (report_type, report_date, event_hash))"
        )
        for statement in indexes:
            conn.execute(sql.SQL(statement.format(t="ss_events_bench")))  # type: ignore[arg-type]
        conn.execute("CHECKPOINT")
        start_lsn = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
        started = time.monotonic()
        with conn.transaction(), conn.cursor().copy(f"COPY ss_events_bench ({EVENT_COLUMNS}) FROM STDIN") as copy:  # type: ignore[arg-type]
            for offset in range(0, len(lines), 1 << 20):
                copy.write(lines[offset : offset + (1 << 20)])
        seconds = time.monotonic() - started
        wal = conn.execute(
            "SELECT pg_current_wal_lsn() - %s::pg_lsn", (start_lsn[0] if start_lsn else "0/0",)
        ).fetchone()
        conn.execute("DROP TABLE ss_events_bench")
    return seconds, int(wal[0]) if wal else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2, help="runs per index set; the best is shown")
    parser.add_argument("--database-url", help="a server to use (a role that may CREATE DATABASE)")
    options = parser.parse_args(argv)
    server = ["--database-url", options.database_url] if options.database_url else []
    bench = Bench(parse_args(["--rows", str(options.rows), *server]))
    results: list[dict[str, Any]] = []
    try:
        bench.start()
        sim, server = bench.simulator(options.rows)
        try:
            count, lines = bench.copy_lines(sim)
        finally:
            server.stop()
            sim.close()
        url = bench.new_database("indexes")
        for name, indexes in SETS.items():
            runs = [measure(url, lines, indexes) for _ in range(options.repeat)]
            seconds, wal = min(runs)
            results.append({"indexes": name, "rows_per_s": round(count / seconds), "wal_mb": round(wal / 2**20)})
    finally:
        bench.close()
    base = results[0]["rows_per_s"]
    print(f"{options.rows:,} rows, raw COPY into ss_events' columns with each index set (best of {options.repeat})")
    print(f"{'index set':<52} {'rows/s':>9} {'vs v1':>6} {'WAL MB':>7}")
    for result in results:
        ratio = result["rows_per_s"] / base
        print(f"{result['indexes']:<52} {result['rows_per_s']:>9,} {ratio:>5.1f}x {result['wal_mb']:>7,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
