"""``new``: findings first seen in a window are exactly those absent from every earlier report date.

Report files are written by hand with known subjects and loaded through ``import``, so every window
has a known answer, including after a late file for an earlier date arrives.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest

from ingestor.ops import filters as flt
from ingestor.ops.search import new_params, plan_nodes

from fixtures.cli import invoke

D1, D2, D3 = date(2026, 11, 16), date(2026, 11, 17), date(2026, 11, 18)
SCAN_HEADER = "timestamp,severity,ip,port,hostname,tag,asn,geo\n"


def scan_file(folder: Path, day: date, name: str, subjects: list[tuple[str, int]], severity: str = "high") -> Path:
    lines = [
        f"{day} 0{n}:00:00Z,{severity},{ip},{port},host{n}.example.com,tag{n},64500,NL\n"
        for n, (ip, port) in enumerate(subjects)
    ]
    path = folder / f"{day}-{name}-org-geo.csv"
    path.write_text(SCAN_HEADER + "".join(lines))
    return path


def accounts_file(folder: Path, day: date, emails: list[str]) -> Path:
    path = folder / f"{day}-compromised_account-org.csv"
    rows = "".join(f"{day} 01:00:00Z,{email},stealer,,,new,,critical,,,\n" for email in emails)
    path.write_text(
        "timestamp,email,infection,source_url,public_source,status,tag,severity,service,username,detail\n" + rows
    )
    return path


def load(url: str, *paths: Path) -> None:
    result = invoke(url, "import", *map(str, paths))
    assert result.exit_code == 0, result.stdout + result.stderr


def new_keys(url: str, *args: str) -> set[tuple[str, str]]:
    result = invoke(url, "new", "--format", "json", *args)
    assert result.exit_code == 0, result.stderr
    return {(item["report_type"], item["finding_key"]) for item in json.loads(result.stdout)}


def ssl(ip: str, port: int) -> tuple[str, str]:
    return ("scan_ssl", f"{ip}|{port}")


@pytest.fixture
def three_days(migrated_db_url: str, tmp_path: Path) -> str:
    url = migrated_db_url
    load(url, scan_file(tmp_path, D1, "scan_ssl", [("192.0.2.1", 443), ("192.0.2.2", 443)]))
    load(
        url,
        scan_file(tmp_path, D2, "scan_ssl", [("192.0.2.1", 443), ("192.0.2.3", 443), ("192.0.2.2", 8443)]),
        scan_file(tmp_path, D2, "scan_rdp", [("192.0.2.1", 3389)], severity="medium"),
        accounts_file(tmp_path, D2, ["a@example.com"]),
    )
    load(
        url,
        scan_file(tmp_path, D3, "scan_ssl", [("192.0.2.1", 443), ("192.0.2.3", 443), ("2001:db8::4", 443)]),
        accounts_file(tmp_path, D3, ["a@example.com", "b@example.com"]),
    )
    return url


def test_new_returns_exactly_the_findings_absent_before_the_window(three_days: str) -> None:
    url = three_days
    day2 = {
        ssl("192.0.2.3", 443),
        ssl("192.0.2.2", 8443),
        ("scan_rdp", "192.0.2.1|3389"),
        ("compromised_account", "a@example.com"),
    }
    day3 = {("scan_ssl", "2001:db8::4|443"), ("compromised_account", "b@example.com")}
    assert new_keys(url, "--since", str(D2), "--until", str(D2)) == day2
    assert new_keys(url, "--since", str(D3), "--until", str(D3)) == day3
    assert new_keys(url, "--since", str(D2), "--until", str(D3)) == day2 | day3
    assert new_keys(url, "--since", str(D1), "--until", str(D1)) == {ssl("192.0.2.1", 443), ssl("192.0.2.2", 443)}
    assert len(new_keys(url, "--since", str(D1))) == 8
    assert new_keys(url, "--since", str(D1 - timedelta(days=5)), "--until", str(D1 - timedelta(days=1))) == set()


def test_new_shows_the_first_event_and_applies_the_filters_to_it(three_days: str) -> None:
    url = three_days
    result = invoke(url, "new", "--since", str(D2), "--until", str(D2), "--format", "json", "--ip", "192.0.2.3")
    (item,) = json.loads(result.stdout)
    assert (item["ip"], item["port"], item["report_date"]) == ("192.0.2.3", 443, str(D2))
    assert (item["first_seen"], item["last_seen"], item["times_seen"]) == (str(D2), str(D3), 2)
    assert item["raw_data"]["ip"] == "192.0.2.3"
    assert new_keys(url, "--since", str(D2), "--until", str(D3), "--severity", "high") == {
        ssl("192.0.2.3", 443),
        ssl("192.0.2.2", 8443),
        ("scan_ssl", "2001:db8::4|443"),
        ("compromised_account", "a@example.com"),
        ("compromised_account", "b@example.com"),
    }
    assert new_keys(url, "--since", str(D2), "--type", "scan_rdp") == {("scan_rdp", "192.0.2.1|3389")}
    assert new_keys(url, "--since", str(D2), "--ip", "2001:db8::/32") == {("scan_ssl", "2001:db8::4|443")}
    assert new_keys(url, "--since", str(D2), "--hostname", "*.example.com", "--type", "scan_ssl") == {
        ssl("192.0.2.3", 443),
        ssl("192.0.2.2", 8443),
        ("scan_ssl", "2001:db8::4|443"),
    }


def test_a_late_file_for_an_earlier_date_makes_a_finding_old(three_days: str, tmp_path: Path) -> None:
    url = three_days
    late = tmp_path / "late"
    late.mkdir()
    path = scan_file(late, D1, "scan_ssl", [("192.0.2.3", 443)])
    load(url, path.rename(late / f"{D1}-scan_ssl-org-geo-delayed.csv"))
    day2 = new_keys(url, "--since", str(D2), "--until", str(D2))
    assert ssl("192.0.2.3", 443) not in day2 and ssl("192.0.2.2", 8443) in day2
    assert ssl("192.0.2.3", 443) in new_keys(url, "--since", str(D1), "--until", str(D1))


def test_new_needs_a_valid_window(three_days: str) -> None:
    missing = invoke(three_days, "new")
    assert missing.exit_code == 2 and "--since" in missing.stderr
    reversed_window = invoke(three_days, "new", "--since", str(D3), "--until", str(D1))
    assert reversed_window.exit_code == 2 and "is after" in reversed_window.stderr
    assert "Traceback" not in missing.stderr + reversed_window.stderr


def test_new_reads_findings_through_their_first_seen_index(three_days: str) -> None:
    with psycopg.connect(three_days, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")  # a tiny table: show that the index serves the query at all
        nodes = plan_nodes(conn, "new_findings", new_params(flt.EventFilter(), D2, D3, None))
    used = {node.get("Index Name") for node in nodes}
    assert "idx_ss_findings_first_seen" in used
    assert not any(node["Node Type"] == "Seq Scan" and node.get("Relation Name") == "ss_events" for node in nodes)
