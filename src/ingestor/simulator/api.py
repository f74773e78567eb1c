"""Request handling of ``POST /api2/<module>/<method>``, independent of any HTTP server.

:func:`handle_api` applies the checks in the order of API doc §6.2 (verb, method, JSON, key, HMAC over
the raw bytes, key status, faults) and then dispatches to one small function per method.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from ingestor.api.signing import verify_signature
from ingestor.simulator.config import ApiKey
from ingestor.simulator.dates import DateSyntaxError, parse_range
from ingestor.simulator.reports import Report

if TYPE_CHECKING:
    from ingestor.simulator.state import Simulator

QUERY_MAX_RESULTS = 10_000
FILTER_ATTRIBUTES = ("ip", "asn", "geo")


class ApiResponse(NamedTuple):
    """What the HTTP layer sends: a status, extra headers and a JSON-ready payload."""

    status: int
    headers: dict[str, str]
    payload: Any


class ApiError(Exception):
    """A method-level error answered as ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


Handler = Callable[["Simulator", ApiKey, dict[str, Any]], Any]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> ApiResponse:
    return ApiResponse(status, headers or {}, {"error": message})


def handle_api(
    sim: Simulator, api_method: str, body: bytes, headers: Mapping[str, str], verb: str = "POST"
) -> ApiResponse:
    """Answer one API request; ``body`` is the raw received bytes, ``headers`` any-case names."""
    if verb.upper() != "POST":
        return _error(405, "Method not allowed", {"Allow": "POST"})
    if api_method not in METHODS or (api_method == "reports/download" and not sim.config.legacy_download):
        return _error(404, "Not found")
    try:
        decoded = json.loads(body)
    except ValueError:
        return _error(400, "Invalid JSON")
    if not isinstance(decoded, dict):
        return _error(400, "Invalid JSON")
    request = cast("dict[str, Any]", decoded)
    signature = next((v for k, v in headers.items() if k.lower() == "hmac2"), None)
    apikey = request.get("apikey")
    key = sim.keys.get(apikey) if isinstance(apikey, str) else None
    if signature is None or key is None:
        return _error(401, "Invalid API key")
    if not verify_signature(key.secret, body, signature):
        return _error(401, "Invalid HMAC")
    if key.status != "active" or "reports" not in key.access:
        return _error(401, "API key is not active")
    latency = sim.faults.snapshot().api_latency
    if latency > 0:
        time.sleep(latency)
    fault = sim.faults.take_api_fault()
    if fault is not None:
        return ApiResponse(fault.status, fault.headers, fault.payload)
    try:
        return ApiResponse(200, {}, METHODS[api_method](sim, key, request))
    except ApiError as exc:
        return _error(exc.status, exc.message)


# -- request fields ---------------------------------------------------------------------------------


def _names(request: dict[str, Any], *fields: str) -> list[str] | None:
    """A filter given as a string or a list of strings under the first present spelling."""
    for name in fields:
        if name in request and request[name] is not None:
            value = request[name]
            if isinstance(value, str):
                return [value]
            if isinstance(value, list):
                items = cast("list[object]", value)
                if all(isinstance(v, str) for v in items):
                    return [str(v) for v in items]
            raise ApiError(400, f"Invalid {name}")
    return None


def _int(request: dict[str, Any], name: str, default: int | None) -> int | None:
    value = request.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ApiError(400, f"Invalid {name}")
    try:
        number = int(value)
    except ValueError:
        raise ApiError(400, f"Invalid {name}") from None
    if number < 0:
        raise ApiError(400, f"Invalid {name}")
    return number


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _visible(sim: Simulator, key: ApiKey, request: dict[str, Any], default: tuple[int, int]) -> list[Report]:
    """Available reports of the key's subscriptions in the requested range, filtered by name and type."""
    try:
        start, end = parse_range(request.get("date"), sim.today(), default)
    except DateSyntaxError:
        raise ApiError(400, "Invalid date") from None
    subs = _names(request, "reports", "report")
    types = _names(request, "types", "type")
    return [
        r
        for r in sim.available(start, end)
        if r.subscription in key.subscriptions
        and (subs is None or r.subscription in subs)
        and (types is None or r.type in {t.lstrip("|") for t in types})
    ]


# -- methods ----------------------------------------------------------------------------------------


def ping(sim: Simulator, key: ApiKey, request: dict[str, Any]) -> Any:
    return {"pong": sim.now().strftime("%Y-%m-%d %H:%M:%SZ")}


def key_info(sim: Simulator, key: ApiKey, request: dict[str, Any]) -> Any:
    return [
        {
            "query_limit": str(key.query_limit),
            "user": key.user,
            "status": key.status,
            "access": list(key.access),
            "query_count": str(key.query_count),
            "apikey": key.key,
            "label": key.label,
        }
    ]


def subscribed(sim: Simulator, key: ApiKey, request: dict[str, Any]) -> Any:
    return list(key.subscriptions)


def list_types(sim: Simulator, key: ApiKey, request: dict[str, Any]) -> Any:
    reports = {r.type: r for r in _visible(sim, key, request, (365, 0))}
    if not _truthy(request.get("detail", False)):
        return sorted(reports)
    return [{"type": t, "name": reports[t].rtype.name, "url": reports[t].as_item()["url"]} for t in sorted(reports)]


def list_reports(sim: Simulator, key: ApiKey, request: dict[str, Any]) -> Any:
    limit = _int(request, "limit", None)
    items = [r.as_item() for r in _visible(sim, key, request, (1, 0))][:limit]
    if sim.faults.snapshot().shuffle_keys:
        for n, item in enumerate(items):
            keys = list(item)
            random.Random(f"{item['id']}:{n}").shuffle(keys)
            items[n] = {k: item[k] for k in keys}
    return items


def stats(sim: Simulator, key: ApiKey, request: dict[str, Any]) -> Any:
    totals: dict[tuple[str, str], int] = {}
    for report in _visible(sim, key, request, (1, 1)):
        slot = (report.date.isoformat(), report.type)
        totals[slot] = totals.get(slot, 0) + report.row_count
    return [["date", "type", "events"], *([d, t, n] for (d, t), n in sorted(totals.items()))]


def schema(sim: Simulator, key: ApiKey, request: dict[str, Any]) -> Any:
    name = request.get("type")
    rtype = sim.type_entry(name) if isinstance(name, str) else None
    if rtype is None:
        raise ApiError(400, "Unknown report type")
    entry: dict[str, Any] = {"name": rtype.name, "url": rtype.url}
    if rtype.taxonomy is not None:
        entry["classification.taxonomy"] = rtype.taxonomy
    if rtype.classification_type is not None:
        entry["classification.type"] = rtype.classification_type
    entry["fields"] = list(rtype.fields)
    return entry


def _matches(row: dict[str, str], report: Report, query: dict[str, Any]) -> bool:
    subject = report.rtype.subject
    for name, wanted in query.items():
        if name in ("date", "type"):
            continue
        column = getattr(subject, name, None) if name in FILTER_ATTRIBUTES else name
        value = row.get(column or "", "")
        if name == "ip":
            try:
                if ipaddress.ip_address(value) not in ipaddress.ip_network(str(wanted), strict=False):
                    return False
            except ValueError:
                return False
        elif value.lower() != str(wanted).lower():
            return False
    return True


def query(sim: Simulator, key: ApiKey, request: dict[str, Any]) -> Any:
    if not key.query_permission:
        raise ApiError(412, "Precondition Failed: reports/query requires separate API permissions")
    criteria = _criteria(request)
    if key.query_limit and key.query_count >= key.query_limit:
        raise ApiError(429, "Query limit exceeded")
    merged: dict[str, Any] = {**request, **{k: criteria[k] for k in ("date", "type") if k in criteria}}
    limit = min(_int(request, "limit", 1000) or 1000, QUERY_MAX_RESULTS)
    page = max(_int(request, "page", 1) or 1, 1)
    offset = (page - 1) * limit
    if offset >= QUERY_MAX_RESULTS:
        return []

    def matching() -> Iterator[dict[str, str]]:
        for report in _visible(sim, key, merged, (1, 0)):
            for row in sim.records(report):
                if _matches(row, report, criteria):
                    yield {**row, "type": report.type}

    return list(itertools.islice(matching(), offset, min(offset + limit, QUERY_MAX_RESULTS)))


def _criteria(request: dict[str, Any]) -> dict[str, Any]:
    """The ``query`` object of a request; 400 unless it holds a supported filter."""
    criteria = request.get("query")
    if not isinstance(criteria, dict) or not any(a in criteria for a in FILTER_ATTRIBUTES):
        raise ApiError(400, "No supported report filters found")
    return cast("dict[str, Any]", criteria)


def device_info(sim: Simulator, key: ApiKey, request: dict[str, Any]) -> Any:
    criteria = _criteria(request)
    scope = sim.config.scope
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [
        ipaddress.ip_network(n) for n in (*scope.ipv4, *scope.ipv6)
    ]
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address]
    if "ip" in criteria:
        try:
            address = ipaddress.ip_address(str(criteria["ip"]))
        except ValueError:
            raise ApiError(400, "Invalid ip") from None
        ips = [address] if any(address in n for n in networks) else []
    elif str(criteria.get("asn")) in {str(a) for a in scope.asns} or criteria.get("geo") in scope.geo:
        ips = [networks[0].network_address + n * 7 + 1 for n in range(5)]
    else:
        ips = []
    vendors = (
        ("Fortinet", "firewall", "FortiGate", "7.0.12"),
        ("MikroTik", "router", "RouterOS", "6.49.8"),
        ("Hikvision", "camera", "DS-2CD2", "5.5.0"),
    )
    return [
        dict(
            zip(
                ("ip", "device_vendor", "device_type", "device_model", "device_version"),
                (str(ip), *vendors[int(ip) % len(vendors)]),
                strict=True,
            )
        )
        for ip in ips
    ]


def legacy_download(sim: Simulator, key: ApiKey, request: dict[str, Any]) -> Any:
    report_id = request.get("id")
    report = sim.report(report_id) if isinstance(report_id, str) else None
    if report is None or report.subscription not in key.subscriptions:
        raise ApiError(404, "Report not found")
    limit = _int(request, "limit", None)
    return list(itertools.islice(sim.records(report), limit))


METHODS: dict[str, Handler] = {
    "test/ping": ping,
    "key/info": key_info,
    "reports/subscribed": subscribed,
    "reports/types": list_types,
    "reports/list": list_reports,
    "reports/stats": stats,
    "reports/schema": schema,
    "reports/query": query,
    "reports/device-info": device_info,
    "reports/download": legacy_download,
}
