"""The simulator's report files: schema columns, value realism, determinism, CSV styles, malformed rows."""

from __future__ import annotations

import csv
import io
import ipaddress
import re
from datetime import date
from typing import Any

import pytest

from ingestor.catalog import load_catalog
from ingestor.simulator import (
    MALFORMATIONS,
    CsvStyle,
    Malformations,
    Report,
    Scope,
    Simulator,
    SimulatorConfig,
)
from ingestor.simulator.generate import ReportRenderer

TODAY = date(2026, 11, 20)
CATALOG = load_catalog()
SCOPE = Scope()
SCOPE_NETS = [ipaddress.ip_network(n) for n in (*SCOPE.ipv4, *SCOPE.ipv6)]
SSL_COLUMNS = len(CATALOG.types["scan_ssl"].fields)
TIMESTAMP = re.compile(r"^2026-11-19 \d{2}:\d{2}:\d{2}Z$")

csv.field_size_limit(64 * 1024 * 1024)


def render(report_type: str, rows: int = 40, seed: int = 7, **kw: Any) -> bytes:
    renderer = ReportRenderer(
        CATALOG.types[report_type],
        day=date(2026, 11, 19),
        rows=rows,
        seed=seed,
        scope=SCOPE,
        style=kw.pop("style", CsvStyle()),
        malformed=kw.pop("malformed", Malformations()),
    )
    out = io.BytesIO()
    renderer.render(out)
    return out.getvalue()


def parse(data: bytes) -> tuple[list[str], list[list[str]]]:
    text = data.decode("utf-8-sig", errors="surrogateescape")
    records = [r for r in csv.reader(io.StringIO(text, newline="")) if r]
    return records[0], records[1:]


def in_scope(value: str) -> bool:
    address = ipaddress.ip_address(value)
    return any(address in net for net in SCOPE_NETS)


@pytest.mark.parametrize("report_type", sorted(CATALOG.types))
def test_every_catalog_type_renders_its_schema_with_subject_in_scope(report_type: str) -> None:
    rtype = CATALOG.types[report_type]
    header, rows = parse(render(report_type, rows=25))
    assert header == list(rtype.fields)
    assert len(rows) == 25
    assert all(len(row) == len(header) for row in rows)
    assert len({tuple(row) for row in rows}) == 25, "rows of one report are pairwise distinct"
    at = {name: n for n, name in enumerate(header)}
    for row in rows:
        assert TIMESTAMP.match(row[at["timestamp"]])
        if rtype.subject.ip:
            assert in_scope(row[at[rtype.subject.ip]]), row[at[rtype.subject.ip]]
            v6 = report_type.split("_")[0].endswith("6") or report_type.endswith("6")
            assert (":" in row[at[rtype.subject.ip]]) == v6
        if rtype.subject.asn:
            assert int(row[at[rtype.subject.asn]]) in SCOPE.asns
        if rtype.subject.geo:
            assert row[at[rtype.subject.geo]] in SCOPE.geo
        if "severity" in at and rtype.default_severity:
            severities = [r[at["severity"]] for r in rows]
            assert severities.count(rtype.default_severity) > len(rows) // 2


@pytest.mark.parametrize(
    "report_type", ["event4_sinkhole", "event4_honeypot_ddos_target", "event4_sinkhole_http_referer", "event6_sinkhole"]
)
def test_the_other_side_of_event_reports_is_outside_the_scope(report_type: str) -> None:
    rtype = CATALOG.types[report_type]
    header, rows = parse(render(report_type))
    other = next(c for c in ("dst_ip", "src_ip") if c in header and c != rtype.subject.ip)
    values = [row[header.index(other)] for row in rows if row[header.index(other)]]
    assert values and not any(in_scope(v) for v in values)


def test_values_follow_shadowserver_formats() -> None:
    data = render("scan_ssl", rows=300)
    assert data.startswith(b'"timestamp","severity","ip",')
    assert b"\r" not in data and not data.startswith(b"\xef\xbb\xbf")
    header, rows = parse(data)
    col = {name: [row[n] for row in rows] for n, name in enumerate(header)}
    assert {int(a) for a in col["asn"]} & {4200000001}, "4-byte ASNs above 2^31 occur"
    assert all(re.fullmatch(r"[A-Z]{2}", g) for g in col["geo"])
    assert all(v == v.upper() for v in col["region"] + col["city"])
    assert all(v == "" or re.fullmatch(r"\d{6}", v) for v in col["naics"])
    assert any("," in s for s in col["sector"])
    assert any(h != h.lower() for h in col["hostname"] if h)
    assert {"tcp"} <= set(col["protocol"]) <= {"tcp", "udp"}
    assert any(";" in t for t in col["tag"])
    assert any(s != "info" for s in col["severity"]), "occasional severity overrides"
    assert all(re.fullmatch(r"([0-9A-F]{2}:){19}[0-9A-F]{2}", f) for f in col["sha1_fingerprint"])
    lines = data.decode().splitlines()[1:]
    assert all(re.match(r'^"2026-11-19 [0-9:]{8}Z","\w+","[0-9.]+","(tcp|udp)",\d+,', line) for line in lines[:50])
    assert ",," in data.decode(), 'empty values are written empty, not as ""'


def test_same_inputs_give_the_same_bytes_and_another_seed_different_ones() -> None:
    assert render("scan_http", seed=1) == render("scan_http", seed=1)
    assert render("scan_http", seed=1) != render("scan_http", seed=2)


def test_a_simulator_serves_identical_files_across_instances_and_new_ones_for_another_seed() -> None:
    def files(seed: int) -> dict[str, bytes]:
        with Simulator(SimulatorConfig(today=TODAY, rows=10, seed=seed)) as sim:
            return {r.file: sim.content(r) for r in sim.reports()}

    first, again, other = files(1), files(1), files(2)
    assert first == again
    assert first.keys() == other.keys()
    assert all(first[name] != other[name] for name in first)


def test_a_report_renders_identically_after_its_cached_file_is_dropped() -> None:
    spec = Malformations(count=5)
    with Simulator(SimulatorConfig(today=TODAY, rows=50, types=("scan_ssl",), malformed=spec)) as sim:
        report = sim.reports()[0]
        first = sim.content(report)
        sim.reset_cache()
        assert not any(sim.cache_dir.iterdir())
        assert sim.content(report) == first


@pytest.mark.parametrize(
    ("style", "check"),
    [
        (CsvStyle(timestamp_z=False), lambda d, h, r: all(re.fullmatch(r"[-0-9]+ [0-9:]+", x[0]) for x in r)),
        (CsvStyle(tag_separator=","), lambda d, h, r: any("," in x[h.index("tag")] for x in r)),
        (CsvStyle(line_terminator="\r\n"), lambda d, h, r: d.count(b"\r\n") == len(r) + 1),
        (CsvStyle(quote_numbers=True), lambda d, h, r: b',"443",' in d and b",443," not in d),
        (
            CsvStyle(shuffle_columns=True),
            lambda d, h, r: (
                h != list(CATALOG.types["scan_ssl"].fields) and sorted(h) == sorted(CATALOG.types["scan_ssl"].fields)
            ),
        ),
        (CsvStyle(extra_columns=("x_future",)), lambda d, h, r: "x_future" in h and len(h) == SSL_COLUMNS + 1),
        (CsvStyle(drop_columns=("severity",)), lambda d, h, r: "severity" not in h and len(h) == SSL_COLUMNS - 1),
        (CsvStyle(non_ascii=True), lambda d, h, r: "MÜNCHEN" in d.decode() and "café" in d.decode()),
        (
            CsvStyle(embedded_newlines=True),
            lambda d, h, r: any("\n" in v for x in r for v in x) and d.count(b"\n") > len(r) + 1,
        ),
        (CsvStyle(bom=True), lambda d, h, r: d.startswith(b'\xef\xbb\xbf"timestamp"')),
    ],
    ids=[
        "legacy-ts",
        "comma-tags",
        "crlf",
        "quoted-numbers",
        "shuffled",
        "extra",
        "missing",
        "non-ascii",
        "newlines",
        "bom",
    ],
)
def test_csv_style_switches(style: CsvStyle, check: object) -> None:
    data = render("scan_ssl", rows=200, style=style)
    header, rows = parse(data)
    assert len(rows) == 200
    assert all(len(row) == len(header) for row in rows)
    assert check(data, header, rows)  # type: ignore[operator]


def count_malformations(report_type: str, header: list[str], rows: list[list[str]]) -> dict[str, int]:
    subject = CATALOG.types[report_type].subject
    ip_at = header.index(subject.ip) if subject.ip else None
    asn_at = header.index(subject.asn) if subject.asn else None
    found: dict[str, int] = {}

    def hit(kind: str) -> None:
        found[kind] = found.get(kind, 0) + 1

    for row in rows:
        if len(row) > len(header):
            hit("extra_cells")
        elif len(row) < len(header):
            hit("missing_cells")
        elif any("\x00" in v for v in row):
            hit("nul_byte")
        elif any("\udcff" in v for v in row):
            hit("non_utf8")
        elif any(len(v) >= 200_000 for v in row):
            hit("huge_field")
        elif asn_at is not None and row[asn_at] == "0":
            hit("asn_zero")
        elif asn_at is not None and int(row[asn_at]) > 2**32 - 1:
            hit("asn_overflow")
        elif ip_at is not None:
            try:
                ipaddress.ip_address(row[ip_at])
            except ValueError:
                hit("invalid_ip")
    return found


@pytest.mark.parametrize("report_type", ["scan_ssl", "event4_sinkhole_http_referer", "compromised_account"])
@pytest.mark.parametrize("spec", [Malformations(count=24), Malformations(rate=0.1)], ids=["count", "rate"])
def test_malformed_rows_match_the_ground_truth(report_type: str, spec: Malformations) -> None:
    with Simulator(SimulatorConfig(today=TODAY, rows=240, types=(report_type,), malformed=spec)) as sim:
        report = sim.reports()[0]
        data = sim.content(report)
    header, rows = parse(data)
    assert len(rows) == report.row_count == 240
    assert sum(report.injected.values()) == 24
    assert count_malformations(report_type, header, rows) == report.injected
    if report_type == "scan_ssl":
        assert set(report.injected) == set(MALFORMATIONS)
        assert b"\xff" in data
    if report_type == "compromised_account":
        assert "invalid_ip" not in report.injected and "asn_zero" not in report.injected


def test_malformed_rows_replace_rows_and_leave_the_others_unchanged() -> None:
    spec = Malformations(count=10, kinds=("missing_cells",))
    with (
        Simulator(SimulatorConfig(today=TODAY, rows=100, types=("device_id",))) as clean,
        Simulator(SimulatorConfig(today=TODAY, rows=100, types=("device_id",), malformed=spec)) as bad,
    ):
        _, good_rows = parse(clean.content(clean.reports()[0]))
        _, bad_rows = parse(bad.content(bad.reports()[0]))
    changed = [n for n, (a, b) in enumerate(zip(good_rows, bad_rows, strict=True)) if a != b]
    assert len(changed) == 10
    assert all(bad_rows[n] == good_rows[n][: len(bad_rows[n])] for n in changed)


def test_malformations_can_be_limited_to_some_types() -> None:
    spec = Malformations(count=3, types=frozenset({"scan_http"}))
    with Simulator(SimulatorConfig(today=TODAY, rows=20, malformed=spec)) as sim:
        injected = {r.type: sum(r.injected.values()) for r in sim.reports()}
    assert injected.pop("scan_http") == 3
    assert set(injected.values()) == {0}


def test_reports_know_their_ground_truth_before_rendering() -> None:
    with Simulator(SimulatorConfig(today=TODAY, rows={"scan_ssl": 7, "*": 3})) as sim:
        counts = {r.type: r.row_count for r in sim.reports(date=TODAY)}
        assert counts.pop("scan_ssl") == 7 and set(counts.values()) == {3}
        assert not any(sim.cache_dir.iterdir()), "nothing rendered yet"
        report: Report = sim.reports(type="scan_ssl")[0]
        assert len(parse(sim.content(report))[1]) == 7


def test_scan_ssl_rows_are_as_large_as_real_ones() -> None:
    """How fast the simulator renders is measured by the benchmark (its "simulator" line), not asserted here."""
    rows = 2_000
    data = render("scan_ssl", rows=rows)
    assert data.count(b"\n") == rows + 1
    assert 600 < len(data) / rows < 1600, "bytes per row close to real scan_ssl files (≈1 KB)"
