"""The report-type filters of a listing: SS_REPORT_TYPES is sent as the API's ``types`` list, SS_EXCLUDE_TYPES
drops types the API has no filter for."""

from __future__ import annotations

import json
from datetime import date

import httpx
from test_client import make_client

from ingestor.api.client import ReportItem
from ingestor.config import load_settings
from ingestor.listing import wanted


def test_several_report_types_are_sent_as_the_types_list() -> None:
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=[])

    with make_client(handler) as client:
        client.list_reports(date(2026, 11, 18), date(2026, 11, 20), types=["scan_ssl", "scan_rdp"])
        client.list_reports(date(2026, 11, 20), date(2026, 11, 20), types=["device_id"])
        client.list_reports(date(2026, 11, 20), date(2026, 11, 20))
    assert bodies[0]["types"] == ["scan_ssl", "scan_rdp"] and "type" not in bodies[0]
    assert bodies[1]["types"] == ["device_id"]
    assert "types" not in bodies[2] and "type" not in bodies[2]


def test_excluded_types_are_dropped_from_the_listing() -> None:
    settings = load_settings({"SS_EXCLUDE_TYPES": "scan_ssl, blocklist"}, env_file=None)
    day = date(2026, 11, 20)
    items = [
        ReportItem(f"id{n}", name, day, f"2026-11-20-{name}-org-geo.csv", "org")
        for n, name in enumerate(["scan_ssl", "device_id", "blocklist", "scan_rdp"])
    ]
    assert [item.type for item in wanted(items, settings)] == ["device_id", "scan_rdp"]
    both = load_settings({"SS_REPORT_TYPES": "scan_ssl,scan_rdp", "SS_EXCLUDE_TYPES": "scan_ssl"}, env_file=None)
    assert [item.type for item in wanted(items, both)] == ["scan_rdp"]
