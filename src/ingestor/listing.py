"""Listing a date window of ``reports/list`` completely.

``reports/list`` takes a ``limit`` and has no pages: a listing that returns ``limit`` entries may have been
cut. Such a listing is split, by day, then by report type (``reports/types``), then by subscription
(``reports/subscribed``), until every part is below the limit; a part that still reaches it cannot be
split further: its entries are kept and it is named in :attr:`Listing.cut`, for the run to say that files
may be missing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import date, timedelta

from ingestor import ledger
from ingestor.api.client import ReportItem, ShadowserverClient
from ingestor.config import Settings

log = logging.getLogger(__name__)


class Listing:
    """A window listed in parts small enough that ``limit`` cuts none of them."""

    def __init__(self, client: ShadowserverClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.invalid = 0
        self.cut: list[str] = []
        """Parts that returned ``limit`` entries and could not be split further."""

    def complete(self, start: date, end: date) -> list[ReportItem]:
        items, whole = self._list(start, end, self.settings.report_types, self.settings.subscriptions)
        if whole:
            return items
        log.warning(
            "listing %s to %s hit SS_LIST_LIMIT=%d; listing it day by day", start, end, self.settings.list_limit
        )
        found: list[ReportItem] = []
        day = start
        while day <= end:
            found += self._day(day)
            day += timedelta(days=1)
        return found

    def _list(
        self, start: date, end: date, types: Sequence[str], subscriptions: Sequence[str]
    ) -> tuple[list[ReportItem], bool]:
        """The items of one listing call, and whether it is whole (fewer than ``limit`` entries came back)."""
        limit = self.settings.list_limit
        items, invalid = self.client.list_reports(start, end, subscriptions=subscriptions, types=types, limit=limit)
        self.invalid += invalid
        return items, len(items) + invalid < limit

    def _day(self, day: date) -> list[ReportItem]:
        items, whole = self._list(day, day, self.settings.report_types, self.settings.subscriptions)
        if whole:
            return items
        excluded = set(self.settings.excluded_types)
        types = self.settings.report_types or [
            str(name) for name in self.client.report_types(day.isoformat()) if str(name) not in excluded
        ]
        log.warning("listing %s hit SS_LIST_LIMIT; listing its %d report types one by one", day, len(types))
        found: list[ReportItem] = []
        for report_type in types:
            found += self._type(day, report_type)
        return found

    def _type(self, day: date, report_type: str) -> list[ReportItem]:
        items, whole = self._list(day, day, [report_type], self.settings.subscriptions)
        if whole:
            return items
        subscriptions = self.settings.subscriptions or self.client.subscribed()
        if len(subscriptions) <= 1:
            self.cut.append(f"{day} {report_type}")
            return items
        found: list[ReportItem] = []
        for subscription in subscriptions:
            part, whole = self._list(day, day, [report_type], [subscription])
            if not whole:
                self.cut.append(f"{day} {report_type} of subscription {subscription}")
            found += part
        return found


def wanted(items: Iterable[ReportItem], settings: Settings) -> list[ReportItem]:
    """The items of the configured types (SS_REPORT_TYPES, less SS_EXCLUDE_TYPES) and subscriptions, each file
    once, in (date, type, file) order. The API has no exclusion filter: excluded types are listed, then dropped."""
    wanted_types = set(settings.report_types)
    excluded = set(settings.excluded_types)
    wanted_subscriptions = set(settings.subscriptions)
    unique: dict[str, ReportItem] = {}
    for item in items:
        if (wanted_types and item.type not in wanted_types) or item.type in excluded:
            continue
        if wanted_subscriptions and item.subscription and item.subscription not in wanted_subscriptions:
            continue
        unique.setdefault(ledger.api_source_key(item.id), item)
    return sorted(unique.values(), key=lambda item: (item.date, item.type, item.file))
