"""Constituents benchmark: what matching costs a load, how fast a rematch runs, how long notify takes.

    python bench/constituents.py            200k-row report, 10,000 orgs / 100,000 networks, 2M events rematched,
                                            notify for 1,000 orgs over a real SMTP server (a few minutes)
    python bench/constituents.py --smoke    tiny; proves the paths work, asserts no speed

Everything runs in one process against one embedded PostgreSQL (durable settings), so the ratio compares
like with like:

1. ingest     the same simulator report (scan_ssl, 30 columns) imported into an empty database, without
              constituents and with ORGS organisations holding NETWORKS networks (CIDRs of mixed lengths
              around the report's addresses, plus ASNs and domains), twice each, alternating; best of two
2. matcher    building it from the tables, its pickled size, the cost of one lookup
3. rematch    REMATCH_ROWS synthetic events over 10 report dates: a first rematch (every row gets owners)
              and one after 100 organisations changed (few rows move)
4. notify     1,000 organisations due, their digests sent to an aiosmtpd server on loopback
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import pickle
import random
import shutil
import socket
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
from aiosmtpd.controller import Controller
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ingestor.catalog import load_catalog
from ingestor.config import load_settings
from ingestor.constituents import store
from ingestor.constituents.matcher import matcher_for
from ingestor.constituents.model import OrgInput
from ingestor.constituents.rematch import rematch
from ingestor.db import partitions
from ingestor.db.connect import EMBEDDED_SETTINGS, Database
from ingestor.db.embedded import EmbeddedPostgres
from ingestor.db.migrate import migrate
from ingestor.notify.run import NotifyOptions, notify
from ingestor.ops.filters import EventFilter
from ingestor.ops.imports import plan_import, run_import
from ingestor.ops.search import search_events
from ingestor.simulator import Simulator, SimulatorConfig
from ingestor.simulator.config import Scope

TODAY = date(2026, 11, 20)


class Sink:
    """An SMTP handler that counts what it accepts."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages += 1
        self.bytes += len(envelope.original_content)
        return "250 OK"


def make_orgs(addresses: list[str], orgs: int, networks: int, rng: random.Random) -> list[OrgInput]:
    """``orgs`` organisations with ``networks`` networks in all: half around the report's addresses (so a good
    share of its rows is matched, some by nested blocks), the rest elsewhere; a few ASNs and domains each."""
    result = [OrgInput(f"Org {n:05d}", emails=[f"abuse{n}@org{n}.example"], notify_mode="all") for n in range(orgs)]
    seen: set[ipaddress.IPv4Network] = set()
    near = networks // 2
    for _ in range(near * 20):  # bounded: a small address space has few distinct networks around it
        if len(seen) >= near or not addresses:
            break
        base = ipaddress.IPv4Address(rng.choice(addresses))
        network = ipaddress.IPv4Network(f"{base}/{rng.choice((20, 22, 24, 24, 26, 28, 30, 32, 32))}", strict=False)
        seen.add(network)
    while len(seen) < networks:
        base = ipaddress.IPv4Address(rng.randrange(1 << 24, 223 << 24))
        seen.add(ipaddress.IPv4Network(f"{base}/{rng.choice((16, 19, 20, 22, 24, 26, 28))}", strict=False))
    for n, network in enumerate(sorted(seen)):
        result[rng.randrange(orgs) if n % 3 else n % orgs].cidrs.append(network)
    for n, org in enumerate(result):
        org.asns.append(4_200_000_000 + n)
        org.domains.append(f"org{n}.example")
    return result


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.base = Path(tempfile.mkdtemp(prefix="ssi-bench-orgs-"))
        self.base.chmod(0o755)
        self.server = EmbeddedPostgres(self.base / "pgdata", db_name="postgres", settings=EMBEDDED_SETTINGS)
        self.results: dict[str, Any] = {}
        self.rng = random.Random(7)

    def database(self, name: str) -> str:
        admin = self.server.admin_url()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = make_conninfo(admin, dbname=name)
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn, viewer_role=None)
        return url

    def load(self, url: str, folder: Path) -> float:
        settings = load_settings({"DATABASE_URL": url}, env_file=None)
        with Database(url) as db:
            started = time.monotonic()
            outcome = run_import(settings, db, plan_import([folder]))
            seconds = time.monotonic() - started
        assert outcome.result is not None and outcome.result.status == "success"
        return seconds

    def run(self) -> dict[str, Any]:
        args = self.args
        self.server.start()
        try:
            folder = self.base / "reports"
            folder.mkdir()
            (self.base / "cache").mkdir()
            scope = Scope(ipv4=("10.0.0.0/18", "10.64.0.0/18", "172.16.0.0/18", "192.168.0.0/18"))
            sim = Simulator(
                SimulatorConfig(types=("scan_ssl",), days=1, rows=args.rows, today=TODAY, scope=scope),
                cache_dir=self.base / "cache",
            )
            report = sim.reports()[0]
            shutil.copyfile(sim.path_of(report), folder / report.file)
            sim.close()
            addresses = self.addresses(folder / report.file)
            orgs = make_orgs(addresses, args.orgs, args.networks, self.rng)
            self.ingest(folder, orgs)
            self.rematch_and_notify(orgs)
        finally:
            self.server.stop()
            shutil.rmtree(self.base, ignore_errors=True)
        return self.results

    @staticmethod
    def addresses(path: Path) -> list[str]:
        import csv

        with path.open(newline="") as stream:
            return [row["ip"] for row in csv.DictReader(stream) if row.get("ip") and ":" not in row["ip"]]

    def ingest(self, folder: Path, orgs: list[OrgInput]) -> None:
        plain: list[float] = []
        matched: list[float] = []
        imported = built = 0.0
        matcher = None
        for attempt in range(2):
            url = self.database(f"bench_plain_{attempt}")
            plain.append(self.load(url, folder))
            url = self.database(f"bench_orgs_{attempt}")
            with psycopg.connect(url) as conn:
                started = time.monotonic()
                store.replace_orgs(conn, orgs)
                imported = time.monotonic() - started
                build = time.process_time()
                matcher = matcher_for(conn)
                built = time.process_time() - build
            matched.append(self.load(url, folder))
            self.matched_url = url
        assert matcher is not None
        share = self.share_matched(self.matched_url)
        lookups = self.addresses_sample(folder)
        started = time.process_time()  # CPU time: less disturbed by other processes on a shared machine
        for ip in lookups:
            matcher.copy_value(ip, None, None)
        per_lookup = (time.process_time() - started) / max(len(lookups), 1) * 1e6
        rows = self.args.rows
        self.results["ingest"] = {
            "rows": rows,
            "orgs": len(orgs),
            "cidrs": sum(len(o.cidrs) for o in orgs),
            "asns_and_domains": sum(len(o.asns) + len(o.domains) for o in orgs),
            "plain_rows_per_s": round(rows / min(plain)),
            "matched_rows_per_s": round(rows / min(matched)),
            "ratio": round(min(plain) / min(matched), 3),
            "rows_matched_share": share,
            "orgs_import_s": round(imported, 2),
            "matcher_build_cpu_s": round(built, 3),
            "matcher_pickle_mb": round(len(pickle.dumps(matcher)) / 1e6, 2),
            "lookup_cpu_us": round(per_lookup, 2),
        }

    def addresses_sample(self, folder: Path) -> list[str]:
        found = self.addresses(next(folder.iterdir()))
        return found[:100_000]

    @staticmethod
    def share_matched(url: str) -> float:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT avg((org_ids IS NOT NULL)::int)::float FROM ss_events").fetchone()
        return round(float(row[0]) if row and row[0] is not None else 0.0, 3)

    @staticmethod
    def search(url: str) -> dict[str, Any]:
        """``search --org`` (limit 100 and all rows) for the organisation with the most events and one with few."""
        out: dict[str, Any] = {}
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE ss_events")
            counts = conn.execute(
                "SELECT u, count(*) FROM ss_events, unnest(org_ids) u GROUP BY u ORDER BY 2 DESC, 1"
            ).fetchall()
            for label, (org_id, events) in (("largest", counts[0]), ("small", counts[len(counts) * 9 // 10])):
                for limit in (100, None):
                    filters = EventFilter(org=str(org_id), org_id=int(org_id))
                    started = time.monotonic()
                    rows = sum(1 for _ in search_events(conn, filters, limit, with_raw=False))
                    key = f"{label}_org_{'limit100' if limit else 'all'}_s"
                    out[key] = round(time.monotonic() - started, 3)
                    out[f"{label}_org_events"] = events
                    assert rows == min(events, limit or events)
        return out

    def rematch_and_notify(self, orgs: list[OrgInput]) -> None:
        url = self.matched_url
        days = 10
        first = TODAY - timedelta(days=days - 1)
        networks = [c for o in orgs for c in o.cidrs]
        with psycopg.connect(url, autocommit=True) as conn:
            partitions.ensure_range(conn, first, TODAY, "month")
            row = conn.execute(
                "INSERT INTO ss_report_files (source, source_key, report_type, report_date, status)"
                " VALUES ('bench', 'bench', 'scan_ssl', %s, 'loaded') RETURNING id",
                (TODAY,),
            ).fetchone()
            assert row is not None
            # Synthetic events: half inside the constituents' networks, half elsewhere.
            chosen = [
                str(n.network_address + self.rng.randrange(n.num_addresses))
                for n in self.rng.sample(networks, min(len(networks), 20_000))
            ]
            conn.execute(
                "INSERT INTO ss_events (report_type, report_date, ip, port, asn, raw_data, event_hash, file_id)"
                " SELECT 'scan_ssl', %(first)s::date + (g %% %(days)s), "
                "  CASE WHEN g %% 2 = 0 THEN (%(chosen)s::text[])[1 + g %% cardinality(%(chosen)s::text[])]::inet"
                "       ELSE ('100.64.0.0'::inet + (g %% 4000000)) END, 443, NULL,"
                "  jsonb_build_object('ip', g::text, 'port', '443', 'severity', 'medium'), md5(g::text), %(file)s"
                " FROM generate_series(1, %(rows)s) g",
                {"first": first, "days": days, "chosen": chosen, "rows": self.args.rematch_rows, "file": row[0]},
            )
            conn.execute("ANALYZE ss_events")
            total = conn.execute("SELECT count(*) FROM ss_events").fetchone()
        with Database(url) as db:
            full = rematch(db)
            with db.connection() as conn:
                changed = [
                    OrgInput(
                        o.name, emails=o.emails, cidrs=o.cidrs[1:], asns=o.asns, domains=o.domains, notify_mode="all"
                    )
                    for o in orgs[:100]
                ]
                store.replace_orgs(conn, changed)
            small = rematch(db)
        self.results["rematch"] = {
            "events": total[0] if total else 0,
            "first_s": round(full.seconds, 1),
            "first_events_per_s": round(full.rate),
            "first_changed": full.changed,
            "after_100_orgs_changed_s": round(small.seconds, 1),
            "after_events_per_s": round(small.rate),
            "after_changed": small.changed,
        }
        self.results["search"] = self.search(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE ss_orgs SET notify_enabled = (id <= %s)", (self.args.notify_orgs,))
        sink = Sink()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        controller = Controller(sink, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            settings = load_settings(
                {
                    "DATABASE_URL": url,
                    "SMTP_HOST": "127.0.0.1",
                    "SMTP_PORT": str(port),
                    "SMTP_SECURITY": "none",
                    "NOTIFY_FROM": "cert@cert.example",
                },
                env_file=None,
            )
            with Database(url) as db:
                result = notify(settings, db, load_catalog(), NotifyOptions(since=first))
        finally:
            controller.stop()
        self.results["notify"] = {
            "orgs_due": result.due,
            "digests_sent": result.sent,
            "events_sent": None,
            "seconds": round(result.seconds, 1),
            "ms_per_digest": round(result.seconds / max(result.sent, 1) * 1000, 1),
            "mb_sent": round(sink.bytes / 1e6, 1),
        }
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT sum(events) FROM ss_notifications WHERE status = 'sent'").fetchone()
            self.results["notify"]["events_sent"] = int(row[0]) if row and row[0] else 0
        assert result.sent == sink.messages and not result.failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the ingested report (default 200000)")
    parser.add_argument("--orgs", type=int, default=10_000, help="organisations (default 10000)")
    parser.add_argument("--networks", type=int, default=100_000, help="CIDR networks in all (default 100000)")
    parser.add_argument("--rematch-rows", type=int, default=2_000_000, help="synthetic events rematched (2000000)")
    parser.add_argument("--notify-orgs", type=int, default=1000, help="organisations notified (default 1000)")
    parser.add_argument("--smoke", action="store_true", help="tiny; proves the paths work")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rows, args.orgs, args.networks, args.rematch_rows, args.notify_orgs = 2000, 200, 2000, 20_000, 50
    results = Bench(args).run()
    print(json.dumps(results, indent=2))
    i, r, n = results["ingest"], results["rematch"], results["notify"]
    print(
        f"ingest_ratio={i['ratio']} matched_share={i['rows_matched_share']} rematch_eps={r['first_events_per_s']}"
        f"/{r['after_events_per_s']} notify_s={n['seconds']} for {n['digests_sent']} digests"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
