"""Which report types exist where: the catalog, the database (with event counts), the ledger (types the
loader did not know), and, on request, what the API key is subscribed to and offered."""

from __future__ import annotations

from typing import Any, cast

import psycopg
from psycopg.rows import dict_row

from ingestor.api.client import ShadowserverClient
from ingestor.catalog import Catalog
from ingestor.ops import QUERIES


def collect_types(
    conn: psycopg.Connection[Any], catalog: Catalog, client: ShadowserverClient | None = None
) -> dict[str, Any]:
    """``{catalog, types: [...], unknown_types: [...], api}``; ``api`` is ``None`` without a client."""
    with conn.cursor(row_factory=dict_row) as cursor:
        stored = {row["report_type"]: row for row in cursor.execute(QUERIES["rows_by_type"]).fetchall()}
        ledger = {row["report_type"]: row for row in cursor.execute(QUERIES["ledger_types"]).fetchall()}
    api = _api_inventory(client) if client is not None else None
    offered: set[str] = set(api["offered"]) if api else set()
    names = sorted(set(catalog.types) | set(stored) | set(ledger) | offered)
    types: list[dict[str, Any]] = []
    for name in names:
        entry = catalog.types.get(name)
        events = stored.get(name, {})
        types.append(
            {
                "type": name,
                "name": entry.name if entry else None,
                "family": entry.family if entry else None,
                "default_severity": entry.default_severity if entry else None,
                "in_catalog": entry is not None,
                "events": events.get("events", 0),
                "first_date": events.get("first_date"),
                "last_date": events.get("last_date"),
                "files": ledger[name]["files"] if name in ledger else 0,
                "offered": (name in offered) if api else None,
            }
        )
    unknown = [item["type"] for item in types if not item["in_catalog"] and (item["events"] or item["files"])]
    return {
        "catalog": {"types": len(catalog), **catalog.source, "file": str(catalog.path) if catalog.path else None},
        "types": types,
        "unknown_types": unknown,
        "api": api,
    }


def _api_inventory(client: ShadowserverClient) -> dict[str, Any]:
    subscribed = client.subscribed()
    offered = sorted({_type_name(item) for item in client.report_types()} - {""})
    return {"subscribed": subscribed, "offered": offered}


def _type_name(item: Any) -> str:
    """``reports/types`` answers names, or (with ``detail``) objects with a ``type`` key."""
    if isinstance(item, dict):
        entry = cast("dict[str, object]", item)
        return str(entry.get("type") or "")
    return str(item)
