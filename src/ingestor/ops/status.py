"""Is ingestion healthy? The latest runs, failed files, unknown report types, events per type and day,
and the database's size, as one JSON-ready dict.

Everything is read from small tables or through indexes; nothing counts the whole of ``ss_events``.
Error texts were redacted when stored and are redacted again here; the ledger keeps no download id.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ingestor import audit
from ingestor.api.client import ShadowserverClient
from ingestor.config import Settings
from ingestor.ops import QUERIES
from ingestor.picture import feed
from ingestor.redaction import redact

FAILED_FILES_SHOWN = 50


def collect_status(
    conn: psycopg.Connection[Any],
    *,
    days: int = 7,
    runs: int = 10,
    today: date | None = None,
    settings: Settings | None = None,
    client: ShadowserverClient | None = None,
) -> dict[str, Any]:
    """The status report: ``database``, ``runs`` (ingestion), ``maintenance`` (prunes), ``failed_files``,
    ``unknown_types``, ``rows_by_type``, and with ``settings`` ``feed`` (alarms on the feed, column drift;
    ``client`` adds the subscription check)."""
    today = today or datetime.now(UTC).date()
    since = today - timedelta(days=max(days, 1) - 1)
    with conn.cursor(row_factory=dict_row) as cursor:
        database = cursor.execute(QUERIES["database_summary"]).fetchone() or {}
        run_rows = cursor.execute(QUERIES["status_runs"], {"runs": runs}).fetchall()
        failed = cursor.execute(
            QUERIES["status_failed_files"], {"days": max(days, 1), "limit": FAILED_FILES_SHOWN}
        ).fetchall()
        maintenance = cursor.execute(QUERIES["recent_maintenance"], {"limit": runs}).fetchall()
        unknown = cursor.execute(QUERIES["unknown_types"]).fetchall()
        per_day = cursor.execute(QUERIES["rows_by_type_and_date"], {"since": since}).fetchall()
    return {
        "generated_at": datetime.now(UTC).replace(microsecond=0),
        "database": {
            "size_bytes": database.get("database_bytes"),
            "events_bytes": database.get("events_bytes"),
            "events_estimate": database.get("events_estimate"),
            "findings_estimate": database.get("findings_estimate"),
            "first_report_date": database.get("first_report_date"),
            "last_report_date": database.get("last_report_date"),
            "last_success": audit.last_success(conn),
            "schema_version": database.get("schema_version"),
        },
        "runs": [_run(row) for row in run_rows],
        "maintenance": [{**row, "error": redact(row["error"]) if row["error"] else None} for row in maintenance],
        "failed_files": [{**row, "error": redact(row["error"]) if row["error"] else None} for row in failed],
        "unknown_types": unknown,
        "rows_by_type": _pivot(per_day, since, today),
        **({"feed": _feed(conn, settings, client)} if settings is not None else {}),
    }


def _feed(conn: psycopg.Connection[Any], settings: Settings, client: ShadowserverClient | None) -> dict[str, Any]:
    alarms = feed.feed_alarms(conn, settings, datetime.now(UTC), None)
    if client is not None and (subscriptions := feed.subscriptions_alarm(client)) is not None:
        alarms.append(subscriptions)
    return {"alarms": [alarm.as_json() for alarm in alarms], "columns": feed.column_drift(conn)}


def _run(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "kind": row["kind"],
        "status": row["status"],
        "started": row["run_started"],
        "finished": row["run_finished"],
        "seconds": round(row["seconds"], 3) if row["seconds"] is not None else None,
        "window_start": row["window_start"],
        "window_end": row["window_end"],
        "files_listed": row["reports_found"],
        "files_new": row["files_new"],
        "files_loaded": row["files_loaded"],
        "files_failed": row["files_failed"],
        "rows_inserted": row["events_ingested"],
        "rows_duplicate": row["rows_duplicate"],
        "rows_rejected": row["rows_rejected"],
        "bytes_downloaded": row["bytes_downloaded"],
        "error": redact(row["error_message"]) if row["error_message"] else None,
    }


def _pivot(rows: list[dict[str, Any]], since: date, today: date) -> dict[str, Any]:
    """``{since, until, days: [...], types: [{report_type, total, by_date: {day: n}}]}``."""
    days = [since + timedelta(days=offset) for offset in range((today - since).days + 1)]
    types: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = types.setdefault(row["report_type"], {"report_type": row["report_type"], "total": 0, "by_date": {}})
        entry["by_date"][row["report_date"].isoformat()] = row["events"]
        entry["total"] += row["events"]
    return {"since": since, "until": today, "days": days, "types": list(types.values())}
