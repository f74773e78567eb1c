"""How long ``events partition`` takes: an unpartitioned ss_events of N rows converted, per million rows.

    .venv/bin/python bench/partitioning.py                 # 1,000,000 events over 60 report dates
    .venv/bin/python bench/partitioning.py --rows 5000000

The events come from bench/queries.py's generator (realistic columns and raw rows, indexes built), in the
plain ss_events of a database upgraded in place (``--layout plain`` there); the conversion is the real
command's code, timed as a whole and by step (copy, indexes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from queries import database, fill, make_plain

from ingestor.config import load_settings
from ingestor.db.connect import Database
from ingestor.db.migrate import migrate
from ingestor.ops.partitioning import convert


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with database(keep=False) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn, viewer_role=None)
            make_plain(conn)
            started = time.monotonic()
            data = fill(conn, args.rows, args.days, datetime.now(UTC).date())
            fill_seconds = time.monotonic() - started
            size = conn.execute("SELECT pg_total_relation_size('ss_events')").fetchone()
        settings = load_settings({"DATABASE_URL": url}, env_file=None)
        with Database(url) as db:
            result = convert(db, settings)
    per_million = result.seconds / (data.rows / 1e6)
    figures = {
        "rows": result.rows,
        "report_dates": result.dates,
        "partitions": result.partitions,
        "table_mb": round((size[0] if size else 0) / 2**20),
        "fill_s": round(fill_seconds, 1),
        "convert_s": round(result.seconds, 1),
        "copy_s": round(result.copy_seconds, 1),
        "indexes_s": round(result.index_seconds, 1),
        "s_per_million_rows": round(per_million, 1),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:>20}: {value:,}" if isinstance(value, int) else f"{key:>20}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
