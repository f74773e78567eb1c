"""The shipped catalog covers the published schema, and subject columns follow the documented families."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingestor.catalog import Subject, family_of, load_catalog, severities_at_least, subject_from_columns
from ingestor.catalog.refresh import build_catalog, refresh

SCHEMA = Path(__file__).resolve().parents[1] / "data" / "schema" / "reports.json"
"""Shadowserver's published schema, pinned in the repository (see its SOURCE.md)."""


def test_catalog_has_every_published_report_type() -> None:
    catalog = load_catalog()
    published = json.loads(SCHEMA.read_text())
    assert len(catalog) == 170
    assert set(catalog.types) == set(published)
    for name, entry in published.items():
        assert catalog.types[name].fields == tuple(entry["fields"]), name


def test_families_match_the_api_documentation() -> None:
    families = [entry.family for entry in load_catalog().types.values()]
    assert (families.count("scan"), families.count("event"), families.count("other")) == (139, 23, 8)


@pytest.mark.parametrize(
    ("report_type", "ip", "port", "asn", "geo", "hostname"),
    [
        ("scan_ssl", "ip", "port", "asn", "geo", "hostname"),
        ("device_id", "ip", "port", "asn", "geo", "hostname"),
        ("special", "ip", "port", "asn", "geo", "hostname"),
        ("blocklist", "ip", None, "asn", "geo", "hostname"),
        ("spam_url", "ip", "port", "asn", "geo", "hostname"),
        ("event4_sinkhole", "src_ip", "src_port", "src_asn", "src_geo", "src_hostname"),
        ("event4_sinkhole_dns", "src_ip", "src_port", "src_asn", "src_geo", "src_hostname"),
        ("event4_honeypot_ddos_target", "dst_ip", "dst_port", "dst_asn", "dst_geo", "dst_hostname"),
        (
            "event4_sinkhole_http_referer",
            "http_referer_ip",
            "http_referer_port",
            "http_referer_asn",
            "http_referer_geo",
            "http_referer_hostname",
        ),
        (
            "event6_sinkhole_http_referer",
            "http_referer_ip",
            "http_referer_port",
            "http_referer_asn",
            "http_referer_geo",
            "http_referer_hostname",
        ),
        ("ransomware_victim", None, None, None, "geo", None),
        ("compromised_account", None, None, None, None, None),
        ("sandbox_dns", None, None, None, None, None),
    ],
)
def test_subject_columns_per_family(
    report_type: str, ip: str | None, port: str | None, asn: str | None, geo: str | None, hostname: str | None
) -> None:
    assert load_catalog().types[report_type].subject == Subject(ip, port, asn, geo, hostname)


def test_every_event_type_reads_a_subject_side_not_plain_ip() -> None:
    for entry in load_catalog().types.values():
        if entry.family == "event":
            assert entry.subject.ip in ("src_ip", "dst_ip", "http_referer_ip"), entry.type


def test_unknown_type_gets_a_generic_entry_from_its_header() -> None:
    entry = load_catalog().get("event4_future_thing", ["timestamp", "src_ip", "src_port", "dst_ip", "src_geo"])
    assert not entry.known
    assert entry.subject == Subject("src_ip", "src_port", None, "src_geo", None)
    assert entry.family == "event"


def test_subject_rule_takes_the_first_ip_column() -> None:
    assert subject_from_columns(["timestamp", "dst_ip", "dst_port", "src_ip"]).ip == "dst_ip"
    assert subject_from_columns(["timestamp", "email"]) == Subject()
    assert family_of("population6_bgp") == "scan"


def test_default_severities_cover_all_but_two_types() -> None:
    missing = sorted(name for name, entry in load_catalog().types.items() if entry.default_severity is None)
    assert missing == ["sandbox_dns", "special"]
    assert load_catalog().types["scan_ssl_poodle"].default_severity == "low"
    assert load_catalog().types["event6_sinkhole_http"].default_severity == "critical"


def test_severities_at_least() -> None:
    assert severities_at_least("high") == ["critical", "high"]
    assert severities_at_least("info") == ["critical", "high", "medium", "low", "info"]


def test_refresh_rebuilds_the_catalog_and_reports_changes(tmp_path: Path) -> None:
    published = json.loads(SCHEMA.read_text())
    published["scan_brandnew"] = {"name": "Brand-New", "fields": ["timestamp", "ip", "port", "severity"]}
    del published["scan_qotd"]
    source = tmp_path / "reports.json"
    source.write_text(json.dumps(published))
    target = tmp_path / "catalog.json"
    target.write_text(json.dumps(load_catalog().to_dict()))
    catalog, added, removed = refresh(str(source), target)
    assert added == ["scan_brandnew"] and removed == ["scan_qotd"]
    assert load_catalog(target).types["scan_brandnew"].subject.ip == "ip"
    assert catalog.types["scan_ssl"].default_severity == "info"


def test_shipped_catalog_is_what_refresh_builds_from_the_pinned_schema() -> None:
    rebuilt = build_catalog(json.loads(SCHEMA.read_text()))
    assert rebuilt.to_dict()["types"] == load_catalog().to_dict()["types"]
