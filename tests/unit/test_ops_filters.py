"""Search filters parse operator input strictly, and the output formats write clean, streamable data."""

from __future__ import annotations

import csv
import io
import ipaddress
import json
from datetime import UTC, date, datetime

import pytest

from ingestor.ops import QUERIES
from ingestor.ops import filters as flt
from ingestor.ops.formats import human_bytes, human_count, human_seconds, write_rows

TODAY = date(2026, 11, 20)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.7", "192.0.2.7/32"),
        ("192.0.2.0/24", "192.0.2.0/24"),
        ("192.0.2.7/24", "192.0.2.0/24"),
        (" 10.0.0.0/8 ", "10.0.0.0/8"),
        ("2001:db8::1", "2001:db8::1/128"),
        ("2001:DB8::/32", "2001:db8::/32"),
    ],
)
def test_parse_network_accepts_addresses_and_cidrs(text: str, expected: str) -> None:
    assert str(flt.parse_network(text)) == expected


@pytest.mark.parametrize("text", ["300.1.2.3", "192.0.2.0/33", "2001:db8::/129", "abc:", "192.0.2", "", "10.0.0.0/x"])
def test_parse_network_rejects_malformed_input(text: str) -> None:
    with pytest.raises(ValueError, match="not an IP address or CIDR network"):
        flt.parse_network(text)


@pytest.mark.parametrize(("text", "expected"), [("64500", 64500), ("AS64500", 64500), ("as4200000001", 4200000001)])
def test_parse_asn_accepts_plain_and_prefixed_numbers(text: str, expected: int) -> None:
    assert flt.parse_asn(text) == expected


@pytest.mark.parametrize("text", ["0", "4294967296", "AS", "sixty", "-5", "64500.5"])
def test_parse_asn_rejects_non_as_numbers(text: str) -> None:
    with pytest.raises(ValueError, match="not an AS number"):
        flt.parse_asn(text)


def test_parse_hostname_lowercases_and_recognises_suffix_patterns() -> None:
    assert flt.parse_hostname("Mail.Example.COM") == ("mail.example.com", None)
    assert flt.parse_hostname("*.Example.com.") == (None, ".example.com")
    assert flt.parse_hostname("_dmarc.example.com") == ("_dmarc.example.com", None)


@pytest.mark.parametrize("text", ["bad host", "a*.example.com", "*", "*.", "exa%mple.com", "-x.com-"])
def test_parse_hostname_rejects_what_is_not_a_hostname(text: str) -> None:
    with pytest.raises(ValueError, match="not a hostname"):
        flt.parse_hostname(text)


def test_suffix_pattern_escapes_like_wildcards() -> None:
    params = flt.EventFilter(hostname_suffix="._x%.example.com").params(None)
    assert params["hostname_like"] == "%.\\_x\\%.example.com"
    assert flt.EventFilter(tag="50%_off").params(None)["tag"] == "%50\\%\\_off%"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01", date(2026, 11, 1)),
        ("today", TODAY),
        ("Yesterday", date(2026, 11, 19)),
        ("7d", date(2026, 11, 13)),
        ("0d", TODAY),
    ],
)
def test_parse_day_accepts_dates_and_relative_days(text: str, expected: date) -> None:
    assert flt.parse_day(text, TODAY) == expected


@pytest.mark.parametrize("text", ["2026-13-01", "2026-02-30", "20261101", "last week", "7", "-3d", "2026-1-1"])
def test_parse_day_rejects_other_text(text: str) -> None:
    with pytest.raises(ValueError, match="not a date"):
        flt.parse_day(text, TODAY)


def test_parse_type_name_accepts_only_catalog_style_names() -> None:
    assert flt.parse_type_name("scan6_ssl") == "scan6_ssl"
    for bad in ("Scan_SSL", "scan-ssl", "scan ssl", ""):
        with pytest.raises(ValueError, match="not a report type name"):
            flt.parse_type_name(bad)


def test_severity_means_at_least_and_absent_filters_are_null() -> None:
    params = flt.EventFilter(severity="high").params(100)
    assert params["severities"] == ["critical", "high"]
    empty = flt.EventFilter().params(None, with_raw=False)
    assert empty.pop("with_raw") is False
    assert all(value is None for value in empty.values())
    assert flt.parse_severity("HIGH") == "high"
    with pytest.raises(ValueError):
        flt.parse_severity("urgent")


def test_a_window_ending_before_it_starts_is_rejected() -> None:
    with pytest.raises(ValueError, match="is after"):
        flt.EventFilter(since=date(2026, 11, 2), until=date(2026, 11, 1))


def test_every_filter_has_its_parameter_in_both_statements() -> None:
    params = flt.EventFilter().params(None)
    for name in ("search_events", "new_findings"):
        for key in params:
            if name == "new_findings" and key in ("since", "until"):
                continue
            assert f"%({key})s" in QUERIES[name], (name, key)


def test_describe_names_every_active_filter() -> None:
    described = flt.EventFilter(
        network=flt.parse_network("192.0.2.0/24"),
        asns=(64500,),
        hostname_suffix=".example.com",
        types=("scan_ssl",),
        severity="high",
        since=TODAY,
        tag="poodle",
        text="nginx",
    ).describe()
    for part in ("192.0.2.0/24", "64500", "*.example.com", "scan_ssl", ">= high", str(TODAY), "poodle", "nginx"):
        assert part in described
    assert flt.EventFilter().describe() == "no filter"


ROWS = [
    {
        "id": 1,
        "report_date": date(2026, 11, 20),
        "ip": ipaddress.ip_address("192.0.2.1"),
        "port": 443,
        "hostname": None,
        "event_time": datetime(2026, 11, 20, 1, 2, 3, tzinfo=UTC),
        "raw_data": {"ip": "192.0.2.1", "city": "München"},
    },
    {
        "id": 2,
        "report_date": date(2026, 11, 19),
        "ip": ipaddress.ip_address("2001:db8::1"),
        "port": None,
        "hostname": "a,b.example",
        "event_time": None,
        "raw_data": {},
    },
]
COLUMNS = ("id", "report_date", "ip", "port", "hostname", "event_time")


def test_csv_has_a_header_iso_values_and_empty_nulls() -> None:
    out = io.StringIO()
    assert write_rows(ROWS, COLUMNS, "csv", out) == 2
    lines = list(csv.reader(io.StringIO(out.getvalue())))
    assert lines == [
        list(COLUMNS),
        ["1", "2026-11-20", "192.0.2.1", "443", "", "2026-11-20T01:02:03+00:00"],
        ["2", "2026-11-19", "2001:db8::1", "", "a,b.example", ""],
    ]


def test_json_is_one_array_with_raw_data_and_ndjson_one_object_per_line() -> None:
    out = io.StringIO()
    write_rows(ROWS, COLUMNS, "json", out)
    data = json.loads(out.getvalue())
    assert [item["id"] for item in data] == [1, 2]
    assert data[0]["raw_data"] == {"ip": "192.0.2.1", "city": "München"}
    assert data[0]["ip"] == "192.0.2.1" and data[1]["port"] is None
    out = io.StringIO()
    write_rows(ROWS, COLUMNS, "ndjson", out)
    lines = out.getvalue().splitlines()
    assert [json.loads(line)["report_date"] for line in lines] == ["2026-11-20", "2026-11-19"]


def test_empty_results_are_still_valid_documents() -> None:
    for fmt, expected in (("json", "[]\n"), ("ndjson", ""), ("csv", ",".join(COLUMNS) + "\n")):
        out = io.StringIO()
        assert write_rows([], COLUMNS, fmt, out) == 0
        assert out.getvalue() == expected


def test_table_prints_long_outputs_in_chunks_without_losing_rows() -> None:
    out = io.StringIO()
    rows = ({"id": number, "ip": f"10.0.0.{number % 250}"} for number in range(1, 1201))
    assert write_rows(rows, ("id", "ip"), "table", out, title="events") == 1200
    text = out.getvalue()
    assert text.count("events") == 1
    assert sum(1 for line in text.splitlines() if "10.0.0." in line) == 1200
    assert "1200" in text


def test_human_numbers() -> None:
    assert human_count(1234567) == "1,234,567"
    assert human_bytes(512) == "512 B" and human_bytes(3 * 1024**3) == "3.0 GB"
    assert human_seconds(0.42) == "0.4 s" and human_seconds(125) == "2 min 5 s" and human_seconds(3780) == "1 h 3 min"
