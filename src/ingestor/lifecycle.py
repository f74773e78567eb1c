"""The finding lifecycle and the daily rollup, kept by the loader in each file's transaction.

A finding is **open** while its type's reports carry it, **resolved** once it has been absent from
``resolve_after`` consecutive *full* report days of its type, and **reopened** when it comes back. A day
on which no file of the type was loaded proves nothing, and neither does a *delta* day (Shadowserver's
opt-in mode where only Sunday's reports are whole and the other days list changes only): the ingestor
cannot tell a delta file from a full one by its name or its rows, so ``SS_DELTA_TYPES`` says which types
come in delta mode, and every day of those but Sunday is recorded as a delta day.

What happened is recorded as two histories, which do not depend on the order files arrive in: the report
days of each type (``ss_report_days``: delivered, full or delta) and the days each finding was seen
(``ss_findings.seen_days``). State, resolution day, reopen count and the rollup's transitions follow from
them by ``ss_finding_replay()`` (migration 0020). The loader applies a file in one of two ways:

* **in order** (the file's day is the newest of its type, or the same as the newest: the daily case): a
  few set-based statements touch the file's findings and the open findings this new full day resolves;
* **late** (an older day than one already loaded: a late file, a retry, a parallel backfill finishing out
  of order): the findings whose history around that day changed are replayed from that day on, and their
  old transitions from that day on are replaced by the new ones (a new day can only change transitions
  dated that day or later).

Both give exactly what ``rollup rebuild`` computes from scratch (tests/integration/test_lifecycle.py loads
the same files in order, shuffled and with several workers, and compares).

Concurrency: files of one type but different days load in parallel (``dispatch.py``). Each file takes its
type's transaction-level advisory lock before it reads or writes a finding or a rollup row of its type, so
the lifecycle of one type is applied by one transaction at a time (the expensive part of loading, COPY,
runs before the lock), and every statement after the lock sees what the others committed. Rows of
different types never meet: findings, report days and rollup rows all have the type in their key, so two
workers never wait for each other's rows, and cannot deadlock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import psycopg

from ingestor.config import Settings
from ingestor.db.queries import QUERIES

log = logging.getLogger(__name__)

TYPE_LOCK_CLASS = 0x5346
"""First key of the per-type advisory locks (the second is ``hashtext(report_type)``); the ingestion lock's
single bigint key has 0x5353 in these 32 bits, so the two never meet."""

SUNDAY = 7
"""ISO weekday of the full report in delta mode."""


@dataclass(frozen=True)
class FindingsPolicy:
    """When findings resolve, and which report types come in delta mode."""

    resolve_after: int = 3
    resolve_after_by_type: dict[str, int] = field(default_factory=dict[str, int])
    delta_types: frozenset[str] = frozenset()
    all_delta: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> FindingsPolicy:
        default, per_type = settings.resolve_after()
        types = frozenset(settings.delta_types)
        return cls(default, per_type, types - {"all"}, "all" in types)

    def days_for(self, report_type: str) -> int:
        """Full report days of absence after which a finding of this type is resolved."""
        return self.resolve_after_by_type.get(report_type, self.resolve_after)

    def delta_type(self, report_type: str) -> bool:
        """Whether this type comes in delta mode (then only its Sunday reports are full)."""
        return self.all_delta or report_type in self.delta_types

    def is_delta(self, report_type: str, report_date: date) -> bool:
        """Whether the report of this type and day lists changes only (a delta), not every finding."""
        return self.delta_type(report_type) and report_date.isoweekday() != SUNDAY


DEFAULT_POLICY = FindingsPolicy()


def lock_type(conn: psycopg.Connection[Any], report_type: str) -> None:
    """Take the report type's lifecycle lock until the end of the transaction."""
    conn.execute(QUERIES["lock_report_type"], {"lock_class": TYPE_LOCK_CLASS, "report_type": report_type})


def apply_file(
    conn: psycopg.Connection[Any],
    *,
    report_type: str,
    report_date: date,
    policy: FindingsPolicy,
    stage: bool = True,
) -> None:
    """Record the file's report day and fold its staged findings into the lifecycle and the rollup.

    ``stage`` is False when the file inserted no row (nothing is staged): the day is still a delivered day.
    The caller owns the transaction; ``ss_stage_findings`` holds the file's inserted rows.
    """
    delta = policy.is_delta(report_type, report_date)
    params: dict[str, Any] = {
        "report_type": report_type,
        "report_date": report_date,
        "delta": delta,
        "resolve_after": policy.days_for(report_type),
    }
    lock_type(conn, report_type)
    row = conn.execute(QUERIES["report_day_before"], params).fetchone()
    newest, day_delta = (row[0], row[1]) if row else (None, None)
    newly_full = not delta and day_delta is not False  # not delivered before, or only as a delta
    full_before: list[date] = []
    in_order = newest is None or report_date >= newest
    if not in_order:
        full_row = conn.execute(QUERIES["full_report_days"], params).fetchone()
        full_before = list(full_row[0]) if full_row and full_row[0] else []
    conn.execute(QUERIES["record_report_day"], params)
    if not stage and not newly_full:
        return  # the day was known already, with its findings: nothing else changes
    for name in ("create_seen_stage", "create_changes_stage", "create_affected_stage"):
        conn.execute(QUERIES[name])
    if stage:
        conn.execute(QUERIES["stage_seen"])
    params["in_order"] = in_order
    if in_order:
        _apply_in_order(conn, params, newly_full, stage)
    else:
        full_after = sorted({*full_before, report_date}) if newly_full else full_before
        _apply_late(conn, {**params, "newly_full": newly_full, "full_before": full_before, "full_after": full_after})
    conn.execute(QUERIES["update_rollup"], params)
    conn.execute(QUERIES["drop_empty_rollup"], params)


def _apply_in_order(conn: psycopg.Connection[Any], params: dict[str, Any], newly_full: bool, stage: bool) -> None:
    if stage:
        conn.execute(QUERIES["classify_in_order"], params)
        conn.execute(QUERIES["update_findings"], params)
    if newly_full:
        conn.execute(QUERIES["resolve_in_order"], params)


def _apply_late(conn: psycopg.Connection[Any], params: dict[str, Any]) -> None:
    conn.execute(QUERIES["stage_affected"], params)
    conn.execute(QUERIES["late_old_transitions"], params)
    conn.execute(QUERIES["late_subjects"], params)
    conn.execute(QUERIES["update_findings"], params)
    conn.execute(QUERIES["late_new_transitions"], params)
    conn.execute(QUERIES["late_update_states"], params)


def rebuild(conn: psycopg.Connection[Any], policy: FindingsPolicy, types: Iterable[str] | None = None) -> list[str]:
    """Recompute the lifecycle and the rollup of each report type (all by default), one transaction per type
    under its lock, so a running service's loads wait for it type by type; return the types rebuilt."""
    if types is None:
        types = [str(row[0]) for row in conn.execute(QUERIES["lifecycle_types"]).fetchall()]
    done: list[str] = []
    for report_type in types:
        with conn.transaction():
            lock_type(conn, report_type)
            conn.execute(
                QUERIES["rebuild_lifecycle"],
                {
                    "report_type": report_type,
                    "resolve_after": policy.days_for(report_type),
                    "delta": policy.delta_type(report_type),
                },
            )
        done.append(report_type)
        log.info("rebuilt the findings lifecycle and rollup of %s", report_type)
    return done
