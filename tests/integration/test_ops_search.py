"""``search`` on a real PostgreSQL: every filter returns exactly the rows a Python model of it selects.

The data are simulator report files loaded through ``import`` (the same parsing and loading as API files),
once for the module; CIDR boundaries get hand-made rows of their own.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from ingestor.config import load_settings
from ingestor.db.connect import Database
from ingestor.db.migrate import migrate
from ingestor.ops.imports import plan_import, run_import
from ingestor.simulator import DEFAULT_TYPES, Simulator, SimulatorConfig

from fixtures.cli import invoke
from fixtures.pg import PgServer, make_partitions
from fixtures.sim import SIM_TODAY


@dataclass
class Loaded:
    url: str
    rows: list[dict[str, Any]]

    def ids(self, predicate: Callable[[dict[str, Any]], bool]) -> list[int]:
        """Ids of matching rows in the commands' order, the unique key's: newest report date first, then by
        report type and event_hash."""
        chosen = sorted(
            (row for row in self.rows if predicate(row)), key=lambda row: (row["report_type"], row["event_hash"])
        )
        return [row["id"] for row in sorted(chosen, key=lambda row: row["report_date"], reverse=True)]


@pytest.fixture(scope="module")
def loaded(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    """Four days of the simulator's default report types and two IPv6 ones, imported once for the module."""
    name = f"test_ops_{uuid.uuid4().hex[:12]}"
    url = pg_server.create_database(name)
    folder = tmp_path_factory.mktemp("reports")
    config = SimulatorConfig(today=SIM_TODAY, days=4, rows=30, types=(*DEFAULT_TYPES, "scan6_ssl", "event6_sinkhole"))
    sim = Simulator(config, cache_dir=tmp_path_factory.mktemp("cache"))
    try:
        for report in sim.reports():
            shutil.copyfile(sim.path_of(report), folder / report.file)
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn, viewer_role=None)
        settings = load_settings({"DATABASE_URL": url}, env_file=None)
        with Database(url) as db:
            outcome = run_import(settings, db, plan_import([folder]))
        assert outcome.result is not None and outcome.result.status == "success"
        with psycopg.connect(url, autocommit=True) as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(
                "SELECT id, report_type, report_date, ip, port, asn, geo, hostname, tag, severity, event_hash,"
                " raw_data::text AS raw_text FROM ss_events"
            ).fetchall()
        yield Loaded(url, rows)
    finally:
        sim.close()
        pg_server.drop_database(name)


def search_ids(url: str, *args: str) -> list[int]:
    result = invoke(url, "search", "--format", "json", *args)
    assert result.exit_code == 0, result.stderr
    return [item["id"] for item in json.loads(result.stdout)]


def in_network(network: str) -> Callable[[dict[str, Any]], bool]:
    net = ipaddress.ip_network(network, strict=False)
    return lambda row: row["ip"] is not None and row["ip"].version == net.version and row["ip"] in net


def test_the_loaded_data_cover_every_filter(loaded: Loaded) -> None:
    rows = loaded.rows
    assert len(rows) > 500
    assert any(row["ip"] is None for row in rows) and any(row["ip"] and row["ip"].version == 6 for row in rows)
    assert any(row["hostname"] for row in rows) and any(row["tag"] for row in rows)
    assert len({row["report_date"] for row in rows}) == 4 and len({row["severity"] for row in rows}) >= 3


@pytest.mark.parametrize(
    "network", ["192.0.2.0/24", "198.51.100.0/25", "198.51.100.128/25", "192.0.2.0/23", "10.0.0.0/8", "2001:db8::/32"]
)
def test_search_ip_returns_exactly_the_rows_in_the_network(loaded: Loaded, network: str) -> None:
    assert search_ids(loaded.url, "--ip", network) == loaded.ids(in_network(network))


def test_search_ip_of_stored_addresses_and_their_ipv6_networks(loaded: Loaded) -> None:
    v4 = next(row["ip"] for row in loaded.rows if row["ip"] and row["ip"].version == 4)
    v6 = next(row["ip"] for row in loaded.rows if row["ip"] and row["ip"].version == 6)
    networks = [str(v4), f"{v4}/28", str(v6), f"{v6}/64", f"{v6}/40", f"{v6}/33"]
    for network in networks:
        expected = loaded.ids(in_network(network))
        assert expected, network
        assert search_ids(loaded.url, "--ip", network) == expected, network
    halves = [search_ids(loaded.url, "--ip", net) for net in ("2001:db8::/33", "2001:db8:8000::/33")]
    assert sorted(halves[0] + halves[1]) == sorted(loaded.ids(in_network("2001:db8::/32")))


def _first(loaded: Loaded, column: str) -> Any:
    return next(row[column] for row in sorted(loaded.rows, key=lambda row: row["id"]) if row[column])


CASES: list[tuple[str, Callable[[Loaded], tuple[list[str], Callable[[dict[str, Any]], bool]]]]] = [
    ("asn", lambda d: (["--asn", str(a := _first(d, "asn"))], lambda r: r["asn"] == a)),
    (
        "two asns",
        lambda d: (
            ["--asn", f"AS{(a := 64496)}", "--asn", str(b := 4200000001)],
            lambda r: r["asn"] in (a, b),
        ),
    ),
    ("hostname", lambda d: (["--hostname", (h := _first(d, "hostname")).upper()], lambda r: r["hostname"] == h)),
    (
        "hostname suffix",
        lambda d: (
            ["--hostname", "*." + (s := _first(d, "hostname").split(".", 1)[1])],
            lambda r: bool(r["hostname"]) and r["hostname"].endswith("." + s),
        ),
    ),
    (
        "types",
        lambda d: (
            ["--type", "scan_ssl", "--type", "blocklist"],
            lambda r: r["report_type"] in ("scan_ssl", "blocklist"),
        ),
    ),
    ("severity", lambda d: (["--severity", "HIGH"], lambda r: r["severity"] in ("critical", "high"))),
    (
        "date range",
        lambda d: (
            ["--since", str(SIM_TODAY - timedelta(days=2)), "--until", str(SIM_TODAY - timedelta(days=1))],
            lambda r: SIM_TODAY - timedelta(days=2) <= r["report_date"] <= SIM_TODAY - timedelta(days=1),
        ),
    ),
    (
        "tag",
        lambda d: (
            ["--tag", (t := _first(d, "tag").split(";")[0][1:-1]).upper()],
            lambda r: bool(r["tag"]) and t.lower() in r["tag"].lower(),
        ),
    ),
    ("text", lambda d: (["--text", "noord-HOLLAND"], lambda r: "noord-holland" in r["raw_text"].lower())),
    (
        "combined",
        lambda d: (
            ["--ip", "192.0.2.0/24", "--severity", "medium", "--since", str(SIM_TODAY - timedelta(days=1))],
            lambda r: (
                in_network("192.0.2.0/24")(r)
                and r["severity"] in ("critical", "high", "medium")
                and r["report_date"] >= SIM_TODAY - timedelta(days=1)
            ),
        ),
    ),
]


@pytest.mark.parametrize("case", [case for _, case in CASES], ids=[name for name, _ in CASES])
def test_each_filter_returns_exactly_what_it_says(
    loaded: Loaded, case: Callable[[Loaded], tuple[list[str], Callable[[dict[str, Any]], bool]]]
) -> None:
    args, predicate = case(loaded)
    expected = loaded.ids(predicate)
    assert 0 < len(expected) < len(loaded.rows), args
    assert search_ids(loaded.url, *args) == expected


def test_csv_ndjson_and_table_outputs(loaded: Loaded) -> None:
    expected = loaded.ids(in_network("192.0.2.0/24"))
    result = invoke(loaded.url, "search", "--ip", "192.0.2.0/24")
    assert result.exit_code == 0 and "rows shown" not in result.stderr
    records = list(csv.DictReader(io.StringIO(result.stdout)))  # piped: CSV, unlimited, no decoration
    assert [int(record["id"]) for record in records] == expected
    assert list(records[0]) == [
        "id",
        "report_type",
        "report_date",
        "ip",
        "port",
        "asn",
        "geo",
        "hostname",
        "tag",
        "severity",
        "event_time",
    ]
    result = invoke(loaded.url, "search", "--ip", "192.0.2.0/24", "--format", "ndjson", "--limit", "3")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["id"] for line in lines] == expected[:3]
    assert isinstance(lines[0]["raw_data"], dict) and lines[0]["ip"].startswith("192.0.2.")
    result = invoke(loaded.url, "search", "--ip", "192.0.2.0/24", "--format", "table", "--limit", "2")
    assert result.exit_code == 0
    assert (
        "report_type" in result.stdout and str(expected[0]) in result.stdout and str(expected[2]) not in result.stdout
    )


def test_limit_zero_means_all(loaded: Loaded) -> None:
    assert len(search_ids(loaded.url, "--limit", "0")) == len(loaded.rows)
    assert len(search_ids(loaded.url, "--limit", "7")) == 7


def test_explain_shows_the_index_of_the_filter(loaded: Loaded) -> None:
    result = invoke(loaded.url, "search", "--ip", "192.0.2.7", "--explain")
    # idx_ss_events_ip, or in a partitioned ss_events the partitions' own (ss_events_p20261101_ip_idx)
    assert result.exit_code == 0 and re.search(r"idx_ss_events_ip|ss_events_p\d{8}_ip_idx", result.stdout), (
        result.stdout
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ip", "300.1.2.3/24"], "not an IP address or CIDR network"),
        (["--ip", "192.0.2.0/33"], "not an IP address or CIDR network"),
        (["--ip", "abc:"], "not an IP address or CIDR network"),
        (["--asn", "AS-1"], "not an AS number"),
        (["--hostname", "bad host"], "not a hostname"),
        (["--since", "2026-13-01"], "not a date"),
        (["--since", "2026-11-20", "--until", "2026-11-01"], "is after"),
        (["--severity", "urgent"], "urgent"),
        (["--type", "Scan-SSL"], "not a report type name"),
        (["--format", "xml"], "xml"),
        (["--limit", "-1"], "-1"),
    ],
)
def test_bad_input_is_one_clear_error_and_exit_2(loaded: Loaded, args: list[str], message: str) -> None:
    result = invoke(loaded.url, "search", *args)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: ")


def test_a_type_nobody_knows_is_searched_with_a_note_not_refused(loaded: Loaded) -> None:
    result = invoke(loaded.url, "search", "--type", "scan_nosuchthing", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    assert "scan_nosuchthing is not in the catalog and nothing of it is stored" in result.stderr
    assert result.stdout.splitlines()[1:] == []  # the header, no rows


def test_cidr_containment_at_the_boundaries(migrated_db_url: str) -> None:
    addresses = [
        "192.0.2.0",
        "192.0.2.255",
        "192.0.3.0",
        "192.0.1.255",
        "10.1.2.3",
        "2001:db8::",
        "2001:db8::ffff",
        "2001:db8::1:0",
        "2001:db8:0:1::1",
        "2001:db9::1",
        "::ffff:192.0.2.1",
        None,
    ]
    with psycopg.connect(migrated_db_url, autocommit=True) as conn:
        make_partitions(conn, date(2026, 11, 1), date(2026, 11, 1) + timedelta(days=len(addresses)))
        for number, address in enumerate(addresses):
            conn.execute(
                "INSERT INTO ss_events (report_type, report_date, ip, raw_data, event_hash)"
                " VALUES ('scan_ssl', %s, %s, '{}', %s)",
                (date(2026, 11, 1) + timedelta(days=number), address, f"hash{number}"),
            )
        stored = conn.execute("SELECT id, ip FROM ss_events").fetchall()
    networks = [
        "192.0.2.0/24",
        "192.0.2.0/23",
        "192.0.2.128/25",
        "0.0.0.0/0",
        "2001:db8::/112",
        "2001:db8::/64",
        "2001:db8::/32",
        "::/0",
        "::ffff:0:0/96",
        "192.0.2.255",
    ]
    for network in networks:
        net = ipaddress.ip_network(network)
        expected = sorted(i for i, ip in stored if ip is not None and ip.version == net.version and ip in net)
        assert sorted(search_ids(migrated_db_url, "--ip", network)) == expected, network
    assert len(search_ids(migrated_db_url, "--ip", "192.0.2.0/24")) == 2
    assert len(search_ids(migrated_db_url, "--ip", "::/0")) == 6
