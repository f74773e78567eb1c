"""Constituents on a real PostgreSQL: import files validated line by line (nothing half-imported), every
event matched at load time to exactly the organisations the rule names, rematch after a change, the
commands that read them (search/new --org, orgs unmatched, show, status)."""

from __future__ import annotations

import json
from pathlib import Path

from fixtures.cli import invoke, query
from fixtures.orgs import ORGS_CSV, OWNERS, SUBJECTS, report_file


def owners(url: str) -> dict[str, set[str]]:
    """Each event's organisations by name, keyed by the event's ip or hostname."""
    rows = query(
        url,
        "SELECT COALESCE(host(e.ip), e.hostname), ARRAY(SELECT o.name FROM ss_orgs o WHERE o.id = ANY(e.org_ids))"
        " FROM ss_events e",
    )
    return {key: set(names) for key, names in rows}


def expected_owners() -> dict[str, set[str]]:
    return {(s["ip"] or s["hostname"]): o for s, o in zip(SUBJECTS, OWNERS, strict=True)}


def load(url: str, folder: Path, name: str = "2026-11-20-scan_http-a.csv") -> None:
    result = invoke(url, "import", str(report_file(folder, name, SUBJECTS)))
    assert result.exit_code == 0, result.stdout + result.stderr


def import_orgs(url: str, path: Path, *extra: str) -> None:
    result = invoke(url, "orgs", "import", str(path), *extra)
    assert result.exit_code == 0, result.stdout + result.stderr


def test_events_are_matched_at_load_time_by_the_most_specific_network_then_asn_then_domain(
    migrated_db_url: str, tmp_path: Path
) -> None:
    (tmp_path / "orgs.csv").write_text(ORGS_CSV)
    import_orgs(migrated_db_url, tmp_path / "orgs.csv")

    load(migrated_db_url, tmp_path)

    assert owners(migrated_db_url) == expected_owners()


def test_a_file_with_a_bad_line_is_reported_line_by_line_and_nothing_is_imported(
    migrated_db_url: str, tmp_path: Path
) -> None:
    bad = (
        "name,emails,networks\n"
        "Good Org,a@good.example,192.0.2.0/24\n"
        "Bad Cidr,b@bad.example,192.0.2.7/24\n"
        "Bad Asn,c@bad.example,AS99999999999\n"
        "Bad Mail,not-an-address,10.0.0.0/8\n"
    )
    (tmp_path / "bad.csv").write_text(bad)

    result = invoke(migrated_db_url, "orgs", "import", str(tmp_path / "bad.csv"))

    assert result.exit_code == 2
    assert "bad.csv:3: Bad Cidr: '192.0.2.7/24' has host bits set (did you mean 192.0.2.0/24?)" in result.stderr
    assert "bad.csv:4: Bad Asn: not an AS number" in result.stderr
    assert "bad.csv:5: Bad Mail: not an e-mail address: 'not-an-address'" in result.stderr
    assert "nothing imported" in result.stderr
    assert query(migrated_db_url, "SELECT count(*) FROM ss_orgs") == [(0,)]


def test_yaml_files_with_nested_settings_and_their_line_numbers(migrated_db_url: str, tmp_path: Path) -> None:
    (tmp_path / "orgs.yaml").write_text(
        "organisations:\n"
        "  - name: Uni\n"
        "    emails: [cert@uni.example]\n"
        "    networks: [192.0.2.0/25, '2001:db8::/48', AS64501, uni.example]\n"
        "    tags: [education]\n"
        "    language: de\n"
        "    notify: {interval: 7d, types: [scan_http], min_severity: high, mode: all, format: text}\n"
        "  - name: Broken\n"
        "    emails: [x@broken.example]\n"
        "    notify: {interval: forever}\n"
    )
    result = invoke(migrated_db_url, "orgs", "import", str(tmp_path / "orgs.yaml"))
    assert result.exit_code == 2 and "orgs.yaml:8: Broken: not an interval" in result.stderr

    (tmp_path / "orgs.yaml").write_text("\n".join((tmp_path / "orgs.yaml").read_text().splitlines()[:7]) + "\n")
    import_orgs(migrated_db_url, tmp_path / "orgs.yaml")

    shown = invoke(migrated_db_url, "orgs", "show", "Uni", "--json")
    detail = json.loads(shown.stdout)
    assert detail["cidrs"] == ["192.0.2.0/25", "2001:db8::/48"] and detail["asns"] == [64501]
    assert detail["domains"] == ["uni.example"] and detail["emails"] == ["cert@uni.example"]
    assert (detail["notify_interval_hours"], detail["notify_types"], detail["notify_min_severity"]) == (
        168,
        ["scan_http"],
        "high",
    )
    assert (detail["notify_mode"], detail["notify_format"], detail["language"]) == ("all", "text", "de")


def test_rematch_moves_stored_events_to_their_new_owners_and_only_writes_the_changed_rows(
    migrated_db_url: str, tmp_path: Path
) -> None:
    load(migrated_db_url, tmp_path)  # loaded before any constituent exists: nobody owns anything
    assert set(map(frozenset, owners(migrated_db_url).values())) == {frozenset()}
    (tmp_path / "orgs.csv").write_text(ORGS_CSV)
    import_orgs(migrated_db_url, tmp_path / "orgs.csv")

    result = invoke(migrated_db_url, "orgs", "rematch")

    assert result.exit_code == 0, result.stderr
    assert "rematched 11 event(s) of 1 report date(s)" in result.stdout and ": 9 changed owner" in result.stdout
    assert owners(migrated_db_url) == expected_owners()
    again = invoke(migrated_db_url, "orgs", "rematch", "--since", "2026-11-01")
    assert ": 0 changed owner" in again.stdout

    assert invoke(migrated_db_url, "orgs", "remove", "Customer Ltd").exit_code == 0
    invoke(migrated_db_url, "orgs", "rematch")
    assert owners(migrated_db_url)["198.51.100.200"] == {"Example ISP"}  # the ISP's /22 now


def test_search_new_and_unmatched_by_organisation(migrated_db_url: str, tmp_path: Path) -> None:
    (tmp_path / "orgs.csv").write_text(ORGS_CSV)
    import_orgs(migrated_db_url, tmp_path / "orgs.csv")
    load(migrated_db_url, tmp_path)

    found = invoke(migrated_db_url, "search", "--org", "Example ISP", "--format", "json")
    assert found.exit_code == 0, found.stderr
    assert sorted(row["ip"] for row in json.loads(found.stdout)) == ["100.64.0.2", "192.0.2.10", "198.51.100.20"]
    new = invoke(migrated_db_url, "new", "--since", "2026-11-01", "--org", "Domain Org", "--format", "json")
    assert sorted(str(row["hostname"]) for row in json.loads(new.stdout)) == [
        "a.sub.example.net",
        "www.shop.example.org",
    ]
    unknown = invoke(migrated_db_url, "search", "--org", "Nobody")
    assert unknown.exit_code == 2 and "no organisation named 'Nobody'" in unknown.stderr

    summary = invoke(migrated_db_url, "orgs", "unmatched", "--since", "2026-11-01", "--format", "json")
    assert [(r["report_type"], r["events"], r["hosts"]) for r in json.loads(summary.stdout)] == [("scan_http", 2, 2)]
    events = invoke(migrated_db_url, "orgs", "unmatched", "--since", "2026-11-01", "--events", "--format", "csv")
    assert sorted(line.split(",")[3] for line in events.stdout.splitlines()[1:]) == ["100.64.0.4", "100.64.0.5"]

    status = invoke(migrated_db_url, "orgs", "status", "--days", "30", "--format", "json")
    by_name = {row["name"]: row for row in json.loads(status.stdout)}
    assert by_name["Example ISP"]["events"] == 3 and by_name["Shared Too"]["events"] == 1
    overall = invoke(migrated_db_url, "status", "--orgs", "--days", "30", "--json")
    assert {row["name"]: row["events"] for row in json.loads(overall.stdout)["organisations"]}["Domain Org"] == 2
    listed = invoke(migrated_db_url, "orgs", "list", "--format", "json")
    assert len(json.loads(listed.stdout)) == 7


def test_a_reimport_replaces_an_organisation_whole_and_changes_the_matcher_version(
    migrated_db_url: str, tmp_path: Path
) -> None:
    (tmp_path / "orgs.csv").write_text(ORGS_CSV)
    import_orgs(migrated_db_url, tmp_path / "orgs.csv")
    token = query(migrated_db_url, "SELECT token FROM ss_org_state")
    (tmp_path / "one.csv").write_text("name,emails,networks\nExample ISP,new@isp.example,192.0.2.0/24\n")

    import_orgs(migrated_db_url, tmp_path / "one.csv")
    load(migrated_db_url, tmp_path)

    assert query(migrated_db_url, "SELECT token FROM ss_org_state") != token
    detail = json.loads(invoke(migrated_db_url, "orgs", "show", "Example ISP", "--json").stdout)
    assert detail["emails"] == ["new@isp.example"] and detail["asns"] == [] and detail["cidrs"] == ["192.0.2.0/24"]
    seen = owners(migrated_db_url)
    assert seen["192.0.2.10"] == {"Example ISP"} and seen["100.64.0.2"] == set()  # its ASN is gone
