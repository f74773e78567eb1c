"""``orgs import-ripe`` on small files in the RIPE database's split-file format, with the odd shapes real dumps
have: header comments, continuation lines (indented and '+'), end-of-line comments, several inetnums per
organisation, a block without an organisation, an organisation without a mailbox, a gzip file."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from fixtures.cli import invoke, query
from fixtures.orgs import RIPE_AUTNUM, RIPE_INET6NUM, RIPE_INETNUM, RIPE_ORGANISATION, RIPE_ROLE, report_file


def dump(folder: Path) -> list[str]:
    (folder / "ripe.db.organisation").write_text(RIPE_ORGANISATION)
    (folder / "ripe.db.role.gz").write_bytes(gzip.compress(RIPE_ROLE.encode()))
    (folder / "ripe.db.inetnum.gz").write_bytes(gzip.compress(RIPE_INETNUM.encode()))
    (folder / "ripe.db.inet6num").write_text(RIPE_INET6NUM)
    (folder / "aut-num-excerpt.txt").write_text(RIPE_AUTNUM)  # no telling name: classified by its first object
    return [str(path) for path in sorted(folder.iterdir())]


def detail(url: str, name: str) -> dict[str, object]:
    result = invoke(url, "orgs", "show", name, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_organisations_blocks_asns_and_abuse_mailboxes_from_split_files(migrated_db_url: str, tmp_path: Path) -> None:
    (tmp_path / "dump").mkdir()
    result = invoke(migrated_db_url, "orgs", "import-ripe", *dump(tmp_path / "dump"))

    assert result.exit_code == 0, result.stdout + result.stderr
    example = detail(migrated_db_url, "Example Networks B.V.")
    assert example["cidrs"] == ["10.10.0.0/22", "10.20.0.0/24", "2001:db8:aa00::/40"]
    assert example["asns"] == [64496] and example["emails"] == ["abuse@example-networks.example"]
    assert (example["handle"], example["country"], example["source"]) == ("ORG-EX1-RIPE", "NL", "ripe")
    other = detail(migrated_db_url, "Other Telecom")
    assert other["cidrs"] == ["10.30.0.0/25"] and other["asns"] == [64497]
    orphan = detail(migrated_db_url, "Orphan abuse")  # no org: the abuse-c role stands for it
    assert orphan["cidrs"] == ["10.40.0.0/24"] and orphan["emails"] == ["orphan@noorg.example"]
    assert "1 organisation(s) without an abuse mailbox left out: ORG-NM3-RIPE" in result.stderr


def test_filtered_by_country_or_handle(migrated_db_url: str, tmp_path: Path) -> None:
    (tmp_path / "dump").mkdir()
    files = dump(tmp_path / "dump")

    assert invoke(migrated_db_url, "orgs", "import-ripe", *files, "--country", "DE").exit_code == 0
    assert query(migrated_db_url, "SELECT name FROM ss_orgs ORDER BY name") == [("Other Telecom",)]

    assert invoke(migrated_db_url, "orgs", "import-ripe", *files, "--org", "ORG-EX1-RIPE", "--prune").exit_code == 0
    assert query(migrated_db_url, "SELECT name FROM ss_orgs ORDER BY name") == [("Example Networks B.V.",)]


def test_manual_entries_override_imported_ones(migrated_db_url: str, tmp_path: Path) -> None:
    (tmp_path / "dump").mkdir()
    files = dump(tmp_path / "dump")
    assert invoke(migrated_db_url, "orgs", "import-ripe", *files).exit_code == 0
    # The CERT knows better: its own contact for Example Networks, and a customer inside its /22 that the
    # RIPE data also lists (the same /24 as Orphan abuse): at one network, the manual entry wins.
    (tmp_path / "manual.csv").write_text(
        "name,emails,networks,handle\n"
        "Example Networks (CERT contact),soc@example-networks.example,10.10.0.0/22,ORG-EX1-RIPE\n"
        "Orphan customer,noc@customer.example,10.40.0.0/24,\n"
    )
    assert invoke(migrated_db_url, "orgs", "import", str(tmp_path / "manual.csv")).exit_code == 0

    again = invoke(migrated_db_url, "orgs", "import-ripe", *files)  # a later RIPE refresh keeps the manual entry

    assert (
        again.exit_code == 0 and "kept (a manual entry overrides the RIPE one): Example Networks B.V." in again.stdout
    )
    names = {row[0] for row in query(migrated_db_url, "SELECT name FROM ss_orgs")}
    assert "Example Networks B.V." not in names and "Example Networks (CERT contact)" in names
    folder = tmp_path / "reports"
    folder.mkdir()
    report_file(folder, "2026-11-20-scan_http-r.csv", [{"ip": "10.10.1.1", "asn": ""}, {"ip": "10.40.0.9", "asn": ""}])
    assert invoke(migrated_db_url, "import", str(folder)).exit_code == 0
    rows = query(
        migrated_db_url,
        "SELECT host(e.ip), ARRAY(SELECT o.name FROM ss_orgs o WHERE o.id = ANY(e.org_ids) ORDER BY 1) FROM ss_events e"
        " ORDER BY 1",
    )
    assert rows == [("10.10.1.1", ["Example Networks (CERT contact)"]), ("10.40.0.9", ["Orphan customer"])]
