"""Build the scripted history (simulator/history.py), load it, check the lifecycle, write the HTML report
and a screenshot of it in headless Chromium.

    .venv/bin/python bench/picture.py                         # 60 days ending yesterday, into bench-picture/
    .venv/bin/python bench/picture.py --days 90 --scale 20    # more subjects: timings of load and report
    DATABASE_URL=postgresql://... .venv/bin/python bench/picture.py   # an empty database of yours

It writes ``OUT/history/*.csv`` (``simulate --reports-dir OUT/history`` serves them to a running service),
``OUT/report.html`` and ``OUT/report.png``, prints what the findings and the feed alarms say next to what
the day-by-day model of the history says, and the seconds each step took.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from ingestor.config import load_settings  # noqa: E402
from ingestor.db.connect import EMBEDDED_SETTINGS, Database  # noqa: E402
from ingestor.db.migrate import migrate  # noqa: E402
from ingestor.ops.imports import plan_import  # noqa: E402
from ingestor.picture import feed  # noqa: E402
from ingestor.picture.report import collect_report, render_html, write_report  # noqa: E402
from ingestor.pipeline import Ingestor  # noqa: E402
from ingestor.simulator.history import standard_history  # noqa: E402

from fixtures.browser import find_chromium, screenshot  # noqa: E402

ENV = {"SS_DELTA_TYPES": "scan_ssl", "FINDINGS_RESOLVE_DAYS": "3"}


@contextmanager
def database() -> Iterator[str]:
    """DATABASE_URL's database, else a fresh embedded server in a temporary directory."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    from ingestor.db.embedded import EmbeddedPostgres

    base = Path(tempfile.mkdtemp(prefix="ssi-picture-"))
    base.chmod(0o755)
    server = EmbeddedPostgres(base / "pgdata", db_name="bench", settings={**EMBEDDED_SETTINGS, "fsync": "off"})
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--scale", type=int, default=1, help="subjects per type x this")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench-picture"))
    args = parser.parse_args()
    end = datetime.now(UTC).date() - timedelta(days=1)
    history = standard_history(end - timedelta(days=args.days - 1), args.days, scale=args.scale)
    shutil.rmtree(args.out / "history", ignore_errors=True)
    paths = history.write(args.out / "history")
    print(f"history: {len(paths)} files, {history.start} to {history.end} in {args.out / 'history'}")
    with database() as url:
        settings = load_settings({"DATABASE_URL": url, "INGEST_WORKERS": str(args.workers), **ENV}, env_file=None)
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn, viewer_role=None)
        started = time.monotonic()
        plan = plan_import(paths)
        with Database(url, pool_size=args.workers + 2) as db:
            result = Ingestor(settings, db, None).run_files("import", plan.reports)
        loaded = time.monotonic() - started
        rows = result.totals.rows_inserted
        print(f"loaded: {result.status}, {rows:,} rows in {loaded:.1f} s ({rows / loaded:,.0f} rows/s)")
        with psycopg.connect(url, autocommit=True) as conn:
            stored = {
                (t, k): (s, r, n)
                for t, k, s, r, n in conn.execute(
                    "SELECT report_type, finding_key, state, resolved_at, reopen_count FROM ss_findings"
                )
            }
            expected = history.expected(3)
            wrong = [
                key
                for key, item in expected.items()
                if stored.get(key) != (item.state, item.resolved_at, item.reopen_count)
            ]
            states = Counter(state for state, _, _ in stored.values())
            print(
                f"findings: {len(stored)} ({states['open']} open, {states['resolved']} resolved,"
                f" {sum(n for _, _, n in stored.values())} reopenings); model: {len(expected)},"
                f" {len(wrong)} differ"
            )
            for alarm in feed.feed_alarms(conn, settings, datetime.now(UTC)):
                print(f"feed alarm: {alarm.message}")
            started = time.monotonic()
            data = collect_report(conn, settings, history.start, history.end)
            document = render_html(data)
            built = time.monotonic() - started
        target = args.out / "report.html"
        write_report(target, document)
        print(f"report: {target} ({len(document.encode()) // 1024} kB) built in {built:.2f} s")
    chromium = find_chromium()
    if chromium is None:
        print("no chromium on PATH (apt-get install chromium): no screenshot")
        return 1 if wrong else 0
    started = time.monotonic()
    png = screenshot(chromium, target, args.out / "report.png")
    print(f"screenshot: {png} in {time.monotonic() - started:.1f} s")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
