"""The simulator's API methods and report inventory, called without HTTP (``Simulator.handle_api``)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from ingestor.api.signing import sign_body
from ingestor.catalog import load_catalog
from ingestor.simulator import (
    ApiKey,
    ApiResponse,
    LateReport,
    Republish,
    Simulator,
    SimulatorConfig,
)
from ingestor.simulator.dates import DateSyntaxError, parse_range
from ingestor.simulator.reports import FILE_NAME

TODAY = date(2026, 11, 20)
KEY = ApiKey(key="k1", secret="s1", subscriptions=("org-a", "org-b"), query_permission=True)
OTHER = ApiKey(key="k2", secret="s2", subscriptions=("org-c",))
LONELY = ApiKey(key="k3", secret="s3", subscriptions=())
TYPES = ("scan_ssl", "device_id", "event4_sinkhole")


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(keys=(KEY, OTHER, LONELY), types=TYPES, today=TODAY, days=5, rows=6)) as s:
        yield s


def call(sim: Simulator, method: str, key: ApiKey = KEY, **fields: Any) -> ApiResponse:
    body = json.dumps({**fields, "apikey": key.key}).encode()
    return sim.handle_api(method, body, {"HMAC2": sign_body(key.secret, body)})


def ok(sim: Simulator, method: str, key: ApiKey = KEY, **fields: Any) -> Any:
    response = call(sim, method, key, **fields)
    assert response.status == 200, response
    return response.payload


# -- order of checks (API doc §6.2) ----------------------------------------------------------------


def test_checks_run_in_the_documented_order(sim: Simulator) -> None:
    good = json.dumps({"apikey": "k1"}).encode()
    signed = {"HMAC2": sign_body("s1", good)}
    assert sim.handle_api("nope/nope", b"{", {}, verb="GET").status == 405
    assert sim.handle_api("nope/nope", b"{", {}).payload == {"error": "Not found"}
    assert sim.handle_api("reports/download", good, signed).status == 404
    assert sim.handle_api("test/ping", b"{not json", {}) == (400, {}, {"error": "Invalid JSON"})
    assert sim.handle_api("test/ping", b'["apikey"]', {}).status == 400
    assert sim.handle_api("test/ping", good, {}) == (401, {}, {"error": "Invalid API key"})
    unknown = json.dumps({"apikey": "who"}).encode()
    assert sim.handle_api("test/ping", unknown, {"HMAC2": sign_body("s1", unknown)}).payload == {
        "error": "Invalid API key"
    }
    assert sim.handle_api("test/ping", good, {"HMAC2": sign_body("s2", good)}) == (401, {}, {"error": "Invalid HMAC"})
    assert sim.handle_api("test/ping", good, {"hmac2": sign_body("s1", good).upper()}).status == 200
    sim.faults.update(force_status=503)
    assert sim.handle_api("test/ping", good, {"HMAC2": "0" * 64}).status == 401, "auth before faults"
    assert sim.handle_api("test/ping", good, signed).status == 503


def test_inactive_keys_and_keys_without_reports_access_are_rejected() -> None:
    inactive = ApiKey(key="a", secret="x", status="suspended")
    no_access = ApiKey(key="b", secret="y", access=())
    with Simulator(SimulatorConfig(keys=(inactive, no_access), today=TODAY)) as sim:
        assert call(sim, "test/ping", inactive).status == 401
        assert call(sim, "test/ping", no_access).status == 401


def test_legacy_download_answers_rows_when_switched_on() -> None:
    with Simulator(SimulatorConfig(today=TODAY, rows=5, legacy_download=True)) as sim:
        key = sim.config.keys[0]
        report = sim.reports(type="scan_http")[0]
        rows = ok(sim, "reports/download", key, id=report.id, limit="3")
        assert len(rows) == 3 and all(isinstance(v, str) for v in rows[0].values())
        assert rows[0]["ip"] and set(rows[0]) == set(report.header)
        assert call(sim, "reports/download", key, id="x" * 50).status == 404


# -- simple methods ---------------------------------------------------------------------------------


def test_ping_key_info_and_subscribed(sim: Simulator) -> None:
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z", ok(sim, "test/ping")["pong"])
    [info] = ok(sim, "key/info")
    assert info["query_limit"] == "0" and info["query_count"] == "0" and info["access"] == ["reports"]
    assert info["apikey"] == "k1" and info["status"] == "active"
    assert ok(sim, "reports/subscribed") == ["org-a", "org-b"]
    assert ok(sim, "reports/subscribed", LONELY) == []


def test_schema_returns_the_catalog_entry_and_400_for_unknown_types(sim: Simulator) -> None:
    entry = ok(sim, "reports/schema", type="scan_ssl")
    assert entry["fields"] == list(load_catalog().types["scan_ssl"].fields)
    assert entry["name"] == "Accessible-SSL" and entry["url"].startswith("https://")
    assert call(sim, "reports/schema", type="scan_nothing").status == 400
    assert call(sim, "reports/schema").status == 400


def test_types_lists_names_or_details_and_accepts_a_string_detail(sim: Simulator) -> None:
    assert ok(sim, "reports/types") == sorted(TYPES)
    detailed = ok(sim, "reports/types", detail="true")
    assert [d["type"] for d in detailed] == sorted(TYPES)
    assert all(set(d) == {"type", "name", "url"} for d in detailed)
    assert ok(sim, "reports/types", detail="false") == sorted(TYPES)
    assert ok(sim, "reports/types", LONELY) == []
    assert ok(sim, "reports/types", date="2020-01-01") == []


def test_stats_counts_rows_per_date_and_type(sim: Simulator) -> None:
    rows = ok(sim, "reports/stats")
    assert rows[0] == ["date", "type", "events"]
    assert rows[1:] == [["2026-11-19", t, 12] for t in sorted(TYPES)], "2 subscriptions x 6 rows, yesterday"
    rows = ok(sim, "reports/stats", date="2026-11-18:2026-11-19", type="scan_ssl", report="org-a")
    assert rows[1:] == [["2026-11-18", "scan_ssl", 6], ["2026-11-19", "scan_ssl", 6]]


def test_query_needs_permission_and_a_filter_then_pages(sim: Simulator) -> None:
    assert call(sim, "reports/query", OTHER, query={"geo": "NL"}).status == 412
    assert call(sim, "reports/query", query={"city": "AMSTERDAM"}).payload == {
        "error": "No supported report filters found"
    }
    everything = ok(sim, "reports/query", query={"ip": "0.0.0.0/0"}, date="2026-11-19", limit=100)
    assert len(everything) == 36 and {r["type"] for r in everything} == set(TYPES)
    page1 = ok(sim, "reports/query", query={"ip": "0.0.0.0/0"}, date="2026-11-19", limit=5)
    page2 = ok(sim, "reports/query", query={"ip": "0.0.0.0/0"}, date="2026-11-19", limit=5, page=2)
    assert page1 == everything[:5] and page2 == everything[5:10]
    assert ok(sim, "reports/query", query={"ip": "0.0.0.0/0"}, date="2026-11-19", limit=100, page=2) == []
    nl = ok(sim, "reports/query", query={"geo": "NL", "type": "|scan_ssl"}, date="2026-11-19")
    assert nl and all(r["geo"] == "NL" and r["type"] == "scan_ssl" for r in nl)


def test_device_info_answers_for_in_scope_addresses(sim: Simulator) -> None:
    [device] = ok(sim, "reports/device-info", query={"ip": "192.0.2.10"})
    assert set(device) == {"ip", "device_vendor", "device_type", "device_model", "device_version"}
    assert ok(sim, "reports/device-info", query={"ip": "8.8.8.8"}) == []
    assert len(ok(sim, "reports/device-info", query={"asn": 64496})) == 5
    assert call(sim, "reports/device-info", query={}).status == 400


# -- reports/list ------------------------------------------------------------------------------------


def test_list_defaults_to_yesterday_and_today_with_all_six_fields(sim: Simulator) -> None:
    items = ok(sim, "reports/list")
    assert {i["timestamp"] for i in items} == {"2026-11-19", "2026-11-20"}
    assert len(items) == 2 * 2 * len(TYPES)
    for item in items:
        assert set(item) == {"id", "type", "file", "report", "timestamp", "url"}
        assert re.fullmatch(r"[A-Za-z0-9]{50}", item["id"])
        match = FILE_NAME.match(item["file"])
        assert match and match.groups()[:2] == (item["timestamp"], item["type"])
        assert item["report"] in ("org-a", "org-b")
    assert len({i["id"] for i in items}) == len(items)


@pytest.mark.parametrize(
    ("date_field", "expected"),
    [
        ("2026-11-18", {"2026-11-18"}),
        ("2026-11-17:2026-11-18", {"2026-11-17", "2026-11-18"}),
        ("now", {"2026-11-20"}),
        ("-2:now", {"2026-11-18", "2026-11-19", "2026-11-20"}),
        ("2026-11-19:now", {"2026-11-19", "2026-11-20"}),
        ("2026-11-18:2026-11-17", {"2026-11-17", "2026-11-18"}),
        ("2026-11-25", set()),
        ("-365:now", {"2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19", "2026-11-20"}),
    ],
)
def test_list_date_syntax(sim: Simulator, date_field: str, expected: set[str]) -> None:
    assert {i["timestamp"] for i in ok(sim, "reports/list", date=date_field)} == expected


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01", "2026-11-01:later", 20261120, ""])
def test_list_rejects_bad_dates(sim: Simulator, bad: object) -> None:
    assert call(sim, "reports/list", date=bad) == (400, {}, {"error": "Invalid date"})


def test_parse_range_relative_and_default() -> None:
    assert parse_range(None, TODAY, (1, 0)) == (date(2026, 11, 19), TODAY)
    assert parse_range("-3", TODAY, (1, 0)) == (date(2026, 11, 17), date(2026, 11, 17))
    with pytest.raises(DateSyntaxError):
        parse_range("now:", TODAY, (1, 0))


@pytest.mark.parametrize(
    ("filters", "subs", "types"),
    [
        ({"reports": ["org-b"]}, {"org-b"}, set(TYPES)),
        ({"report": "org-a"}, {"org-a"}, set(TYPES)),
        ({"reports": ["org-c"]}, set(), set()),
        ({"type": "device_id"}, {"org-a", "org-b"}, {"device_id"}),
        ({"type": ["device_id", "scan_ssl"]}, {"org-a", "org-b"}, {"device_id", "scan_ssl"}),
        ({"types": ["event4_sinkhole"], "reports": "org-a"}, {"org-a"}, {"event4_sinkhole"}),
    ],
)
def test_list_filters(sim: Simulator, filters: dict[str, Any], subs: set[str], types: set[str]) -> None:
    items = ok(sim, "reports/list", **filters)
    assert {i["report"] for i in items} == subs
    assert {i["type"] for i in items} == types


def test_list_limit_accepts_numbers_and_strings(sim: Simulator) -> None:
    assert len(ok(sim, "reports/list", limit=3)) == 3
    assert len(ok(sim, "reports/list", limit="4")) == 4
    assert call(sim, "reports/list", limit="many").status == 400
    assert call(sim, "reports/list", type=5).status == 400


def test_keys_see_only_their_subscriptions(sim: Simulator) -> None:
    assert {i["report"] for i in ok(sim, "reports/list", OTHER)} == {"org-c"}
    assert ok(sim, "reports/list", LONELY) == []


def test_list_item_key_order_can_be_shuffled(sim: Simulator) -> None:
    plain = ok(sim, "reports/list")
    sim.faults.update(shuffle_keys=True)
    shuffled = ok(sim, "reports/list")
    assert plain == shuffled, "same items"
    assert len({tuple(i) for i in shuffled}) > 1, "key order varies between items"


def test_error_with_status_200_and_next_n_faults_count_down(sim: Simulator) -> None:
    sim.faults.update(error_200_next=1, api_errors_next=1, rate_limit_next=1, retry_after=7)
    assert call(sim, "reports/list").status == 503
    limited = call(sim, "reports/list")
    assert limited.status == 429 and limited.headers == {"Retry-After": "7"}
    assert call(sim, "reports/list") == (200, {}, {"error": "Internal error, please try again later"})
    assert call(sim, "reports/list").status == 200
    assert sim.counters.api_calls("reports/list") == 4
    assert sim.counters.api_calls("reports/list", 200) == 2


# -- inventory over time ----------------------------------------------------------------------------


def test_new_days_bring_new_reports_and_old_ids_stay(sim: Simulator) -> None:
    before = {i["id"] for i in ok(sim, "reports/list", date="2026-11-16:2026-11-21")}
    sim.set_today(TODAY + timedelta(days=1))
    after = ok(sim, "reports/list", date="2026-11-16:2026-11-21")
    assert before < {i["id"] for i in after}
    assert {i["timestamp"] for i in after if i["id"] not in before} == {"2026-11-21"}


def test_late_and_republished_files_appear_later() -> None:
    config = SimulatorConfig(
        today=TODAY,
        rows=5,
        types=("scan_ssl",),
        late=(LateReport("scan_ssl", days_ago=2),),
        republish=(Republish("scan_ssl", days_ago=1),),
    )
    with Simulator(config) as sim:
        key = sim.config.keys[0]
        early = ok(sim, "reports/list", key, date="-3:now")
        assert not any(i["file"].endswith("-delayed.csv") for i in early)
        sim.set_clock(lambda: datetime(2026, 11, 21, 7, tzinfo=UTC))
        later = ok(sim, "reports/list", key, date="2026-11-17:2026-11-20")
        [late] = [i for i in later if i["file"].endswith("-delayed.csv")]
        assert late["timestamp"] == "2026-11-18" and late["file"] == "2026-11-18-scan_ssl-example-org-geo-delayed.csv"
        twins = [i for i in later if i["file"] == "2026-11-19-scan_ssl-example-org-geo.csv"]
        assert len(twins) == 2 and twins[0]["id"] != twins[1]["id"]
        first, second = (sim.report(i["id"]) for i in twins)
        assert first is not None and second is not None
        assert sim.content(first) == sim.content(second), "republished with identical bytes"


def test_unknown_types_are_listed_with_plausible_columns() -> None:
    config = SimulatorConfig(today=TODAY, rows=5, types=("scan_ssl",), unknown_types=("scan_futureproto",))
    with Simulator(config) as sim:
        key = sim.config.keys[0]
        assert "scan_futureproto" in ok(sim, "reports/types", key)
        [report] = sim.reports(type="scan_futureproto", date=TODAY)
        assert not report.known and "scan_futureproto" not in load_catalog().types
        assert report.header[:3] == ["timestamp", "severity", "ip"]
        assert "futureproto_version" in report.header
        assert ok(sim, "reports/schema", key, type="scan_futureproto")["fields"] == report.header


def test_publish_adds_a_report_at_runtime(sim: Simulator) -> None:
    old = sim.reports(type="scan_ssl", date=TODAY)[0]
    new = sim.publish("scan_ssl", TODAY, subscription="org-a", file=old.file, rows=3)
    assert new.id != old.id and new.file == old.file and new.row_count == 3
    assert new.id in {i["id"] for i in ok(sim, "reports/list", date="now")}
