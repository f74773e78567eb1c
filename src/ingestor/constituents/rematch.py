"""``orgs rematch``: recompute ``ss_events.org_ids`` with the constituents as they are now.

One report date at a time (a partition's range of the unique key), newest first, each in its own short
transaction: the date's rows are read with ``COPY TO`` (id, address, ASN, hostname, current owners),
matched in Python with the same :class:`~ingestor.constituents.matcher.Matcher` the loader uses (one rule,
one implementation), and only the rows whose owners changed are written back, through the primary key in
key order. A change of constituents usually moves few events, so a rematch mostly reads.

Loading may go on meanwhile: a file loaded after the change was matched with the new constituents; one
whose load started before it commits with the old ones, and a later rematch of its date fixes it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from ingestor.constituents import QUERIES
from ingestor.constituents.matcher import NULL, Matcher, matcher_for
from ingestor.db.connect import Database
from ingestor.errors import StopRequested
from ingestor.ops import QUERIES as OPS_QUERIES


@dataclass
class RematchResult:
    dates: int = 0
    events: int = 0
    changed: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def rematch(
    db: Database,
    *,
    since: date | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[date, int, int], None] | None = None,
) -> RematchResult:
    """Re-match the events of every report date from ``since`` (all when None); return what changed."""
    started = time.monotonic()
    result = RematchResult()
    with db.connection() as conn:
        days = [row[0] for row in conn.execute(OPS_QUERIES["distinct_report_dates"]).fetchall()]
        matcher = matcher_for(conn) or Matcher("none")
        conn.rollback()
    for day in days:
        if since is not None and day < since:
            continue
        if stop is not None and stop.is_set():
            raise StopRequested("stop requested during the rematch; the dates done so far are kept")
        events, changed = _rematch_day(db, matcher, day)
        result.dates += 1
        result.events += events
        result.changed += changed
        if progress is not None:
            progress(day, events, changed)
    result.seconds = time.monotonic() - started
    return result


def _rematch_day(db: Database, matcher: Matcher, day: date) -> tuple[int, int]:
    params: dict[str, Any] = {"report_date": day}
    events = 0
    changes: list[str] = []
    with db.connection() as conn, conn.transaction():
        with conn.cursor().copy(QUERIES["rematch_read"], params) as copy:
            copy.set_types(["int8", "text", "int8", "text", "text"])
            for event_id, ip, asn, hostname, current in copy.rows():
                events += 1
                wanted = matcher.copy_value(ip, asn, hostname)
                if wanted != (current if current is not None else NULL):
                    changes.append(f"{event_id}\t{wanted}\n")
        if changes:
            conn.execute(QUERIES["create_rematch_stage"])
            with conn.cursor().copy(QUERIES["copy_rematch_stage"]) as copy:
                copy.write("".join(changes))
            conn.execute(QUERIES["apply_rematch"], params)
    return events, len(changes)
