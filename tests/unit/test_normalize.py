"""CSV reading and normalisation: typed subject columns per family, v1-compatible hashing, edge cases."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from typing import Any

import pytest

from ingestor.catalog import load_catalog
from ingestor.parse.csvfile import CsvProblem, ReportCsv, cells_of
from ingestor.parse.normalize import (
    EXTRA_CELLS_KEY,
    Anomaly,
    NormalizedRow,
    Reject,
    Rejection,
    RowNormalizer,
    parse_asn,
    parse_ip,
    parse_timestamp,
)

CATALOG = load_catalog()


def v1_rows(data: bytes) -> list[dict[str, Any]]:
    """What v1.0.0 hashed, had it decoded the bytes as UTF-8."""
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def normalize_file(report_type: str, data: bytes) -> list[NormalizedRow | Rejection | CsvProblem]:
    reader = ReportCsv(io.BytesIO(data))
    normalizer = RowNormalizer(CATALOG.get(report_type, reader.header), reader.header)
    return [record if isinstance(record, CsvProblem) else normalizer(cells_of(record)) for record in reader.records()]


def one(report_type: str, data: bytes) -> NormalizedRow:
    (row,) = normalize_file(report_type, data)
    assert isinstance(row, NormalizedRow)
    return row


def test_scan_row_maps_plain_columns_and_hashes_like_v1() -> None:
    data = (
        b'"timestamp","severity","ip","protocol","port","hostname","tag","asn","geo"\n'
        b'"2024-01-04 08:04:37Z","Medium","192.0.2.7","tcp",443,"Mail.Example.COM","ssl;vpn",4200000001,"AT"\n'
    )
    row = one("scan_ssl", data)
    assert (row.ip, row.port, row.asn, row.geo, row.hostname, row.tag, row.severity) == (
        "192.0.2.7",
        443,
        4200000001,
        "AT",
        "mail.example.com",
        "ssl;vpn",
        "medium",
    )
    assert row.event_time == "2024-01-04 08:04:37Z"
    (v1_row,) = v1_rows(data)
    assert row.event_hash == hashlib.sha256(json.dumps(v1_row, sort_keys=True, default=str).encode()).hexdigest()
    assert json.loads(row.raw_json) == v1_row
    assert row.anomalies == () and row.legacy_hash is None


def test_event_row_takes_the_src_side() -> None:
    data = (
        b'"timestamp","src_ip","src_port","src_asn","src_geo","src_hostname","dst_ip","dst_port","dst_asn","severity"\n'
        b'"2024-01-04 00:00:01Z","198.51.100.9",50123,64500,"DE","Bot.Example.net","203.0.113.1",80,65000,"critical"\n'
    )
    row = one("event4_sinkhole", data)
    assert (row.ip, row.port, row.asn, row.geo, row.hostname) == (
        "198.51.100.9",
        50123,
        64500,
        "DE",
        "bot.example.net",
    )


def test_ddos_target_takes_the_dst_side() -> None:
    data = (
        b'"timestamp","protocol","dst_ip","dst_port","dst_asn","dst_geo","dst_hostname","src_ip","src_port"\n'
        b'"2024-01-04 00:00:01Z","udp","192.0.2.50",53,64501,"NL","Victim.example",'
        b'"203.0.113.66",123\n'
    )
    row = one("event4_honeypot_ddos_target", data)
    assert (row.ip, row.port, row.asn, row.geo, row.hostname) == (
        "192.0.2.50",
        53,
        64501,
        "NL",
        "victim.example",
    )


def test_sinkhole_http_referer_takes_the_referer_side() -> None:
    data = (
        b'"timestamp","http_referer_ip","http_referer_port","http_referer_asn","http_referer_geo",'
        b'"http_referer_hostname","dst_ip","dst_port"\n'
        b'"2024-01-04 00:00:01Z","2001:db8::5",8080,64502,"FR","Ref.Example","203.0.113.1",80\n'
    )
    row = one("event6_sinkhole_http_referer", data)
    assert (row.ip, row.port, row.asn, row.geo, row.hostname) == (
        "2001:db8::5",
        8080,
        64502,
        "FR",
        "ref.example",
    )


def test_reports_without_ip_keep_ip_null_but_ransomware_keeps_geo() -> None:
    victim = one("ransomware_victim", b'"timestamp","entity_name","geo","severity"\n"2024-01-04","ACME","CH","info"\n')
    assert (victim.ip, victim.geo, victim.port, victim.asn) == (None, "CH", None, None)
    account = one("compromised_account", b'"timestamp","email","severity"\n"2024-01-04","a@b.example","critical"\n')
    assert (account.ip, account.geo) == (None, None)


def test_missing_severity_column_uses_the_type_default() -> None:
    row = one("scan_ssl_poodle", b'"timestamp","ip","port"\n"2021-03-04 00:00:00","192.0.2.1",443\n')
    assert row.severity == "low"
    assert row.event_time == "2021-03-04 00:00:00Z"


def test_unknown_type_maps_by_header_and_still_loads() -> None:
    row = one(
        "scan_futureproto",
        b'"timestamp","ip","port","asn","geo"\n"2026-01-01 00:00:00Z","192.0.2.3",7,64500,"US"\n',
    )
    assert (row.ip, row.port, row.asn, row.geo) == ("192.0.2.3", 7, 64500, "US")


def test_invalid_values_become_null_and_are_counted_but_the_row_is_kept() -> None:
    data = b'"timestamp","ip","port","asn","severity"\n"yesterday","999.1.1.1","http",-5,"urgent"\n'
    row = one("scan_http", data)
    assert (row.ip, row.port, row.asn, row.event_time) == (None, None, None, None)
    assert row.severity == "urgent"
    assert set(row.anomalies) == {
        Anomaly.INVALID_IP,
        Anomaly.INVALID_PORT,
        Anomaly.INVALID_ASN,
        Anomaly.INVALID_TIMESTAMP,
        Anomaly.UNKNOWN_SEVERITY,
    }


def test_asn_zero_means_unknown_and_is_not_an_anomaly() -> None:
    row = one("scan_http", b'"ip","asn"\n"192.0.2.1",0\n')
    assert row.asn is None and row.anomalies == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (" 192.0.2.1 ", "192.0.2.1"),
        ("2001:DB8::1", "2001:DB8::1"),
        ("192.0.2.0/24", "192.0.2.0/24"),
        ("192.0.2.5/24", "192.0.2.5/24"),
        ("", None),
    ],
)
def test_parse_ip_accepts_addresses_and_networks(value: str, expected: str | None) -> None:
    assert parse_ip(value) == expected


@pytest.mark.parametrize("value", ["1.2.3", "01.2.3.4", "fe80::1%eth0", "a.b.c.d", "1.2.3.4/33", "1.2.3.4\x00"])
def test_parse_ip_rejects_what_postgres_or_common_sense_would(value: str) -> None:
    with pytest.raises(ValueError):
        parse_ip(value)


def test_parse_asn_handles_as_prefix_and_bounds() -> None:
    assert parse_asn("AS13335") == 13335
    assert parse_asn("4294967295") == 4294967295
    with pytest.raises(ValueError):
        parse_asn("4294967296")


def test_parse_timestamp_formats() -> None:
    assert parse_timestamp("2024-01-04 08:04:37Z") == "2024-01-04 08:04:37Z"
    assert parse_timestamp("2024-01-04 08:04:37") == "2024-01-04 08:04:37Z"
    assert parse_timestamp("2024-01-04T08:04:37") == "2024-01-04T08:04:37+00:00"
    assert parse_timestamp("2021-03-27T00:00:00.521730Z") == "2021-03-27T00:00:00.521730+00:00"
    with pytest.raises(ValueError):
        parse_timestamp("Mon, 10 Jan 2022 00:01:44 GMT")


def test_extra_cells_go_under_a_reserved_key_and_missing_cells_are_null() -> None:
    data = b'"ip","port","tag"\n"192.0.2.1",80,"a","surplus1","surplus2"\n"192.0.2.2",81\n'
    long_row, short_row = normalize_file("scan_http", data)
    assert isinstance(long_row, NormalizedRow) and isinstance(short_row, NormalizedRow)
    assert json.loads(long_row.raw_json)[EXTRA_CELLS_KEY] == ["surplus1", "surplus2"]
    assert long_row.anomalies == (Anomaly.EXTRA_CELLS,)
    assert json.loads(short_row.raw_json)["tag"] is None
    assert short_row.anomalies == (Anomaly.MISSING_CELLS,)
    assert short_row.event_hash == hashlib.sha256(json.dumps(v1_rows(data)[1], sort_keys=True).encode()).hexdigest()


def test_nul_is_removed_from_stored_values_but_kept_in_the_hash() -> None:
    data = b'"ip","hostname","banner"\n"192.0.2.1","h\x00ost","a\x00b"\n'
    row = one("scan_http", data)
    assert row.hostname == "host"
    assert json.loads(row.raw_json)["banner"] == "ab"
    assert row.anomalies == (Anomaly.NUL_REMOVED,)
    assert row.event_hash == hashlib.sha256(json.dumps(v1_rows(data)[0], sort_keys=True).encode()).hexdigest()


def test_invalid_utf8_bytes_are_read_as_latin1_and_counted() -> None:
    row = one("scan_http", b'"ip","city"\n"192.0.2.1","M\xfcnchen \xe2\x82\xac"\n')
    assert json.loads(row.raw_json)["city"] == "München €"
    assert row.anomalies == (Anomaly.INVALID_UTF8,)
    assert row.legacy_hash is not None


def test_non_ascii_rows_get_the_v1_latin1_hash_as_legacy_hash() -> None:
    data = '"city","ip","timestamp"\n"café","192.0.2.1","2024-01-04 08:04:37Z"\n'.encode()
    row = one("scan_http", data)
    assert row.event_hash == "48a64cbb4e09a0ab6f31f62c4e67f10d7ae0500627953675132580bc346ca277"
    assert row.legacy_hash == "4b528fb058c39fb3929dec01f778a7213a6d47f434eef563fcbfece6a5ff2c20"


def test_bom_crlf_embedded_newlines_and_blank_lines() -> None:
    data = b'\xef\xbb\xbf"ip","banner"\r\n"192.0.2.1","line1\r\nline2"\r\n\r\n"192.0.2.2","x"\r\n'
    reader = ReportCsv(io.BytesIO(data))
    assert reader.header == ["ip", "banner"]
    records = list(reader.records())
    assert records == [["192.0.2.1", "line1\r\nline2"], ["192.0.2.2", "x"]]


def test_oversized_rows_are_rejected_alone() -> None:
    data = b'"ip","banner"\n"192.0.2.1","' + b"x" * 5000 + b'"\n"192.0.2.2","ok"\n'
    reader = ReportCsv(io.BytesIO(data))
    normalizer = RowNormalizer(CATALOG.get("scan_http", reader.header), reader.header, max_row_chars=1000)
    results = [normalizer(cells_of(cells)) for cells in reader.records() if not isinstance(cells, CsvProblem)]
    assert isinstance(results[0], Rejection) and results[0].reason == Reject.ROW_TOO_LARGE
    assert isinstance(results[1], NormalizedRow) and results[1].ip == "192.0.2.2"


def test_header_only_and_empty_files() -> None:
    assert list(ReportCsv(io.BytesIO(b'"ip","port"\n')).records()) == []
    empty = ReportCsv(io.BytesIO(b""))
    assert empty.header == [] and list(empty.records()) == []


def test_duplicate_header_names_behave_like_dictreader() -> None:
    data = b'"ip","tag","tag"\n"192.0.2.1","first","second"\n'
    row = one("scan_http", data)
    assert row.tag == "second"
    assert json.loads(row.raw_json) == v1_rows(data)[0]


@pytest.mark.parametrize(
    ("cell", "stored"),
    [
        (" rdp.mycorp.example", "rdp.mycorp.example"),
        ("MX.MyCorp.Example.", "mx.mycorp.example"),
        ("\tHost.Example. ", "host.example"),
        (" . ", None),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("Bücher.Example", "bücher.example"),
    ],
)
def test_hostnames_are_stored_as_iris_compares_them(cell: str, stored: str | None) -> None:
    data = f'"timestamp","ip","port","hostname"\n"2026-11-20 00:00:00Z","192.0.2.1",3389,"{cell}"\n'.encode()
    row = one("scan_rdp", data)
    assert row.hostname == stored
    assert json.loads(row.raw_json)["hostname"] == cell  # the row itself is kept as delivered (and hashed so)


def test_url_and_sandbox_reports_before_november_2023_name_the_host_column_host() -> None:
    """report_schema completed-changes.md, 2023-11-18: sandbox/URL reports host -> hostname."""
    for report_type in ("malware_url", "sandbox_url", "sandbox_conn", "spam_url"):
        header = b'"timestamp","url","host","ip","asn","geo"\n'
        row = one(report_type, header + b'"2023-06-01 00:00:00","http://a/","Bad.Example","192.0.2.9",64500,"NL"\n')
        assert (row.hostname, row.ip, row.asn, row.geo) == ("bad.example", "192.0.2.9", 64500, "NL"), report_type


@pytest.mark.parametrize(
    ("retired", "current", "port"),
    [("microsoft_sinkhole", "event4_microsoft_sinkhole", "src_port"), ("botnet_drone", "event4_sinkhole", "port")],
)
def test_retired_type_names_load_as_their_current_type_with_their_own_subject_columns(
    retired: str, current: str, port: str
) -> None:
    report = CATALOG.get(retired, ["timestamp", "ip", port, "asn", "geo", "hostname"])
    assert (report.type, report.delivered_as, report.known) == (current, retired, True)
    assert (report.subject.ip, report.subject.port) == ("ip", port)
    header = f'"timestamp","ip","{port}","asn","geo","hostname"\n'
    row = one(retired, (header + '"2020-05-01 00:00:00","198.51.100.7",51234,64501,"DE","X.Example"\n').encode())
    assert (row.ip, row.port, row.asn, row.geo, row.hostname) == ("198.51.100.7", 51234, 64501, "DE", "x.example")
    assert CATALOG.canonical(retired) == current and CATALOG.canonical(current) == current
