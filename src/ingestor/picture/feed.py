"""Alarms on the feed itself: what a "successful" cycle does not say.

* **missing type**: a report type that arrived (a file listed, whatever became of it) on at least
  ``ALARM_MISSING_TYPE_DAYS`` of the 7 report days before the reference day, and not on it. The reference
  day is the newest report date of the ledger once ``GRACE_HOURS`` of it have passed (UTC), else the report
  date before it: files of a day arrive over some hours, and a type that usually comes later in the day
  is not flagged while the day is young.
* **empty cycles**: the last ``ALARM_EMPTY_CYCLES`` ingestion cycles succeeded and listed no file at all.
* **no subscriptions**: ``reports/subscribed`` answers ``[]`` while ``key/info`` works (asked by the
  service while cycles are empty, and by ``status --api``).
* **column drift** (information, not an alarm): columns new to, or vanished from, a type's published schema,
  with the report dates the ledger first and last saw them so.

Alarms make ``/health`` say ``degraded`` (still 200: ingestion works, the feed may not), set
``shadowserver_ingestor_feed_alarm{kind,report_type}`` and are listed by ``status``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ingestor import metrics
from ingestor.api.client import ShadowserverClient
from ingestor.config import Settings
from ingestor.errors import IngestorError
from ingestor.lifecycle import SUNDAY, FindingsPolicy
from ingestor.picture import QUERIES

log = logging.getLogger(__name__)

WINDOW_DAYS = 7
GRACE_HOURS = 12


@dataclass(frozen=True)
class Alarm:
    """One thing wrong with the feed."""

    kind: str
    """``missing_type``, ``empty_cycles`` or ``no_subscriptions``."""
    message: str
    report_type: str = ""
    since: date | datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "report_type": self.report_type or None,
            "since": self.since,
            "message": self.message,
        }


def reference_day(newest: date | None, now: datetime) -> date | None:
    """The report day whose arrivals are judged: the newest one once ``GRACE_HOURS`` of it have passed."""
    if newest is None:
        return None
    started = datetime.combine(newest, time(), UTC)
    return newest if now - started >= timedelta(hours=GRACE_HOURS) else newest - timedelta(days=1)


def missing_types(
    conn: psycopg.Connection[Any], min_days: int, now: datetime, is_delta: Callable[[str], bool] = lambda _: False
) -> list[Alarm]:
    """Types that arrived on at least ``min_days`` of the week before the reference day, and not on it.

    A type in delta mode (``is_delta``) sends no file on a weekday when nothing changed: it is judged on
    Sundays only, when its full report is due, and flagged if that report is missing after one came
    in the week before.
    """
    if min_days <= 0:
        return []
    row = conn.execute(QUERIES["newest_report_date"]).fetchone()
    day = reference_day(row[0] if row else None, now)
    if day is None:
        return []
    alarms: list[Alarm] = []
    with conn.cursor(row_factory=dict_row) as cursor:
        for item in cursor.execute(QUERIES["type_arrivals"], {"day": day, "window": WINDOW_DAYS}):
            if item["on_day"]:
                continue
            if is_delta(item["report_type"]):
                if day.isoweekday() == SUNDAY and item["days_before"] >= 1:
                    alarms.append(
                        Alarm(
                            "missing_type",
                            f"{item['report_type']} (delta mode) sent no full report on Sunday {day}"
                            f" (last file {item['last_date']})",
                            item["report_type"],
                            item["last_date"],
                        )
                    )
                continue
            if item["days_before"] >= min_days:
                alarms.append(
                    Alarm(
                        "missing_type",
                        f"{item['report_type']} arrived on {item['days_before']} of the {WINDOW_DAYS} report days"
                        f" before {day} and not on {day} (last file {item['last_date']})",
                        item["report_type"],
                        item["last_date"],
                    )
                )
    return alarms


def empty_cycles(conn: psycopg.Connection[Any], count: int) -> Alarm | None:
    """An alarm when the last ``count`` cycles all succeeded and listed no file."""
    if count <= 0:
        return None
    cycles = conn.execute(QUERIES["recent_cycles"], {"limit": count}).fetchall()
    if len(cycles) < count or any(status != "success" or found for status, found, _ in cycles):
        return None
    since = cycles[-1][2]
    return Alarm(
        "empty_cycles",
        f"the last {count} cycles succeeded and listed no file at all (since {since:%Y-%m-%d %H:%M} UTC):"
        " is the key still subscribed, did the API change?",
        since=since,
    )


def subscriptions_alarm(client: ShadowserverClient) -> Alarm | None:
    """An alarm when ``reports/subscribed`` answers ``[]`` while ``key/info`` works; None if either fails."""
    try:
        if client.subscribed():
            return None
        client.key_info()
    except IngestorError as exc:
        log.debug("subscription check not possible: %s", exc)
        return None
    return Alarm("no_subscriptions", "reports/subscribed answers [] while key/info works: the key has no reports")


def feed_alarms(
    conn: psycopg.Connection[Any], settings: Settings, now: datetime, client: ShadowserverClient | None = None
) -> list[Alarm]:
    """Every alarm the database shows, and with ``client`` the subscription check once cycles are empty."""
    policy = FindingsPolicy.from_settings(settings)
    alarms = missing_types(conn, settings.alarm_missing_type_days, now, policy.delta_type)
    empty = empty_cycles(conn, settings.alarm_empty_cycles)
    if empty is not None:
        alarms.append(empty)
        if client is not None and (subscriptions := subscriptions_alarm(client)) is not None:
            alarms.append(subscriptions)
    return alarms


def column_drift(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """New and vanished columns per type, with first and last report dates (see ``column_drift``)."""
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(QUERIES["column_drift"]).fetchall()


def observe(conn: psycopg.Connection[Any], alarms: list[Alarm]) -> None:
    """Mirror the alarms and the open findings per type and severity in the metrics."""
    metrics.FEED_ALARMS.clear()
    for alarm in alarms:
        metrics.FEED_ALARMS.labels(alarm.kind, alarm.report_type).set(1)
    metrics.OPEN_FINDINGS.clear()
    for report_type, severity, count in conn.execute(QUERIES["open_findings_by_type"]).fetchall():
        metrics.OPEN_FINDINGS.labels(report_type, severity or "none").set(count)
