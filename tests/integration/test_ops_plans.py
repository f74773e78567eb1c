"""Query plans of ``search`` and ``new`` on realistic data: each filter is served by its index.

The data come from the benchmark's generator (bench/queries.py): 30 report dates of 5,000 events, 2 %
new subjects a day, statistics gathered. The plans are PostgreSQL's own, with the values bound as the
commands bind them (so absent filters fold away and ``inet <<=`` becomes an index range).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest

from ingestor.db.migrate import migrate
from ingestor.ops import filters as flt
from ingestor.ops.search import new_params, plan_nodes

from fixtures.pg import PgServer

pytestmark = pytest.mark.pg_matrix  # plans differ between majors: run on each (./run matrix)

BENCH = Path(__file__).resolve().parents[2] / "bench" / "queries.py"
TODAY = date(2026, 11, 20)
ROWS = 150_000
KEY = "ss_events_report_type_report_date_event_hash_key"
"""The unique key, (report_date DESC NULLS LAST, report_type, event_hash): the date index of ss_events."""


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_queries", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


PARENTS: dict[str, str] = {}
"""Partition and partition-index names -> the names on ss_events (plans name a partition's own)."""


@pytest.fixture(scope="module")
def filled(pg_server: PgServer) -> Iterator[tuple[psycopg.Connection[Any], Any]]:
    name = f"test_plans_{uuid.uuid4().hex[:12]}"
    url = pg_server.create_database(name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn, viewer_role=None)
            data = load_bench().fill(conn, ROWS, 30, TODAY)
            PARENTS.update(
                conn.execute(
                    "SELECT c.relname, p.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                    " JOIN pg_class p ON p.oid = i.inhparent"
                ).fetchall()
            )
            yield conn, data
    finally:
        pg_server.drop_database(name)


def scans(nodes: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {
        (node["Node Type"], PARENTS.get(name, name))
        for node in nodes
        if "Scan" in node["Node Type"]
        for name in [node.get("Index Name") or node.get("Relation Name") or ""]
    }


def uses_index(nodes: list[dict[str, Any]], index: str) -> bool:
    return any(PARENTS.get(node.get("Index Name", ""), node.get("Index Name")) == index for node in nodes)


def seq_scans_events(nodes: list[dict[str, Any]]) -> bool:
    return ("Seq Scan", "ss_events") in scans(nodes)


def search_plan(conn: psycopg.Connection[Any], limit: int | None, **filters: Any) -> list[dict[str, Any]]:
    return plan_nodes(conn, "search_events", flt.EventFilter(**filters).params(limit))


@pytest.mark.parametrize("limit", [101, None], ids=["terminal", "all"])
@pytest.mark.parametrize(
    ("network", "index"),
    [
        ("10.46.243.98", "idx_ss_events_ip"),
        ("10.46.243.0/24", "idx_ss_events_ip"),
        ("2001:db8::33:0/120", "idx_ss_events_ip"),
    ],
)
def test_ip_and_small_networks_use_the_ip_index(filled: Any, network: str, index: str, limit: int | None) -> None:
    conn, _ = filled
    nodes = search_plan(conn, limit, network=flt.parse_network(network))
    assert uses_index(nodes, index) and not seq_scans_events(nodes), scans(nodes)
    conditions = json.dumps(
        [
            node.get("Index Cond")
            for node in nodes
            if PARENTS.get(node.get("Index Name", ""), node.get("Index Name")) == index
        ]
    )
    assert ">=" in conditions and "<=" in conditions  # <<= became a btree range


def test_absent_filters_fold_away(filled: Any) -> None:
    conn, _ = filled
    nodes = search_plan(conn, None, network=flt.parse_network("10.46.243.0/24"))
    assert "IS NULL" not in json.dumps(nodes)


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({"network": flt.parse_network("10.46.0.0/16")}, "idx_ss_events_ip"),
        ({"network": flt.parse_network("2001:db8::33:0/112")}, "idx_ss_events_ip"),
        ({"asns": (64546,)}, "idx_ss_events_asn"),
        ({"hostname": "h2.example.org"}, "idx_ss_events_hostname"),
        ({"since": TODAY - timedelta(days=1), "until": TODAY}, KEY),
        ({"types": ("scan_rdp",), "since": TODAY - timedelta(days=6)}, KEY),
        ({"severity": "critical", "since": TODAY}, KEY),
    ],
    ids=["cidr16", "cidr6", "asn", "hostname", "dates", "type+dates", "severity+date"],
)
def test_every_indexed_filter_streams_all_its_rows_through_its_index(
    filled: Any, filters: dict[str, Any], index: str
) -> None:
    conn, _ = filled
    nodes = search_plan(conn, None, **filters)
    assert uses_index(nodes, index) and not seq_scans_events(nodes), scans(nodes)


@pytest.mark.parametrize(
    "filters",
    [{}, {"severity": "critical"}, {"tag": "freak"}, {"hostname_suffix": ".example.org"}, {"types": ("scan_ssl",)}],
    ids=["none", "severity", "tag", "hostname-suffix", "type"],
)
def test_the_terminal_default_walks_the_key_by_date_instead_of_the_table(filled: Any, filters: dict[str, Any]) -> None:
    conn, _ = filled
    nodes = search_plan(conn, 101, **filters)
    assert not seq_scans_events(nodes), scans(nodes)


@pytest.mark.parametrize("days", [1, 7])
@pytest.mark.parametrize("limit", [101, None], ids=["terminal", "all"])
def test_new_reads_the_first_seen_index_and_never_scans_the_events(filled: Any, days: int, limit: int | None) -> None:
    conn, data = filled
    since = TODAY - timedelta(days=days - 1)
    nodes = plan_nodes(conn, "new_findings", new_params(flt.EventFilter(), since, TODAY, limit))
    assert uses_index(nodes, "idx_ss_findings_first_seen"), scans(nodes)
    assert uses_index(nodes, KEY) and not seq_scans_events(nodes), scans(nodes)
    assert ("Seq Scan", "ss_findings") not in scans(nodes)
    (count,) = conn.execute(
        "SELECT count(*) FROM ss_findings WHERE first_seen BETWEEN %s AND %s", (since, TODAY)
    ).fetchone() or (0,)
    assert count == data.churn * days
