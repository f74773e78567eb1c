"""The matching rule on its own, and the parse worker keeping the matcher between files."""

from __future__ import annotations

import ipaddress
import pickle
from pathlib import Path

from ingestor.catalog import load_catalog
from ingestor.constituents.matcher import NULL, Matcher
from ingestor.constituents.ripe import inetnum_cidrs, iter_objects
from ingestor.parse.batches import Batch
from ingestor.parse.worker import ParseWorker


def cidr(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


def test_the_most_specific_network_wins_then_the_asn_then_the_longest_domain() -> None:
    matcher = Matcher.build(
        "t",
        [
            (1, cidr("10.0.0.0/8"), None, None, True),
            (2, cidr("10.1.0.0/16"), None, None, True),
            (3, cidr("10.1.2.0/24"), None, None, True),
            (4, cidr("10.1.2.0/24"), None, None, True),  # listed by two: both own it
            (5, cidr("2001:db8::/32"), None, None, True),
            (6, cidr("2001:db8:1::/48"), None, None, True),
            (7, None, 64500, None, True),
            (8, None, None, "example.org", True),
            (9, None, None, "a.example.org", True),
        ],
    )
    assert matcher.copy_value("10.9.9.9", 64500, "x.a.example.org") == "{1}"
    assert matcher.copy_value("10.1.9.9", None, None) == "{2}"
    assert matcher.copy_value("10.1.2.3", None, None) == "{3,4}"
    assert matcher.copy_value("2001:db8:1::5", None, None) == "{6}"
    assert matcher.copy_value("2001:db8:2::5", None, None) == "{5}"
    assert matcher.copy_value("192.0.2.1", 64500, "x.a.example.org") == "{7}"
    assert matcher.copy_value("192.0.2.1", 64501, "x.a.example.org") == "{9}"
    assert matcher.copy_value(None, None, "www.example.org.") == "{8}"
    assert matcher.copy_value(None, None, "notexample.org") == NULL
    assert matcher.copy_value("192.0.2.1", None, None) == NULL
    assert matcher.org_ids("10.1.2.3", None, None) == [3, 4]


def test_at_one_entry_manual_organisations_override_imported_ones() -> None:
    matcher = Matcher.build(
        "t",
        [
            (1, cidr("10.0.0.0/24"), None, None, False),
            (2, cidr("10.0.0.0/24"), None, None, True),
            (3, None, 64500, None, False),
        ],
    )
    assert matcher.copy_value("10.0.0.1", None, None) == "{2}"
    assert matcher.copy_value(None, 64500, None) == "{3}"


def test_nested_networks_are_flattened_into_ranges_owned_by_the_innermost_network() -> None:
    matcher = Matcher.build(
        "t",
        [
            (1, cidr("10.0.0.0/8"), None, None, True),
            (2, cidr("10.0.0.0/16"), None, None, True),  # starts where its parent starts
            (3, cidr("10.0.255.0/24"), None, None, True),  # ends where its parent ends
            (4, cidr("10.0.128.0/17"), None, None, True),
            (5, cidr("10.0.192.0/24"), None, None, True),
            (6, cidr("10.255.255.255/32"), None, None, True),
        ],
    )
    expect = {
        "10.0.0.0": "{2}", "10.0.127.255": "{2}", "10.0.128.0": "{4}", "10.0.191.255": "{4}", "10.0.192.0": "{5}",
        "10.0.192.255": "{5}", "10.0.193.0": "{4}", "10.0.254.255": "{4}", "10.0.255.0": "{3}", "10.0.255.255": "{3}",
        "10.1.0.0": "{1}", "10.255.255.254": "{1}", "10.255.255.255": "{6}", "9.255.255.255": NULL, "11.0.0.0": NULL,
    }  # fmt: skip
    assert {ip: matcher.copy_value(ip, None, None) for ip in expect} == expect
    assert pickle.loads(pickle.dumps(matcher)) == matcher


def test_the_worker_keeps_a_matcher_version_and_is_sent_another_only_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("timestamp,ip,port,asn\n2026-11-20 00:00:00Z,10.0.0.1,80,\n")
    report = load_catalog().get("scan_http", ["timestamp", "ip", "port", "asn"])
    first = Matcher.build("v1", [(1, cidr("10.0.0.0/8"), None, None, True)])
    same_version = Matcher.build("v1", [(2, cidr("10.0.0.0/8"), None, None, True)])
    second = Matcher.build("v2", [(3, cidr("10.0.0.0/8"), None, None, True)])
    worker = ParseWorker()
    try:
        owners = []
        for matcher in (first, same_version, second):
            (batch, _) = list(worker.parse(path, report, "scan_http\t2026-11-20\t1\t", 100, matcher))
            assert isinstance(batch, Batch)
            owners.append(batch.data.decode().rstrip("\n").rsplit("\t", 1)[1])
    finally:
        worker.close()
    assert owners == ["{1}", "{1}", "{3}"]  # the same version is not sent (nor rebuilt) again


def test_rpsl_comments_and_continuation_lines() -> None:
    text = "% header\n\ninetnum: 10.0.0.0 - 10.0.1.255 # comment\ndescr: one\n two\n+\n\tthree\norg: ORG-A\n\n# c\n"
    (obj,) = list(iter_objects(text.splitlines(keepends=True)))
    assert obj == [("inetnum", "10.0.0.0 - 10.0.1.255"), ("descr", "one two three"), ("org", "ORG-A")]
    assert inetnum_cidrs("10.0.0.0 - 10.0.2.127") == [cidr("10.0.0.0/23"), cidr("10.0.2.0/25")]
