"""The finding lifecycle and the daily rollup over a scripted history (simulator/history.py): weeks of files
with fixes, reappearances, days without a file, a delta-mode type, two variants per day of one type.

Whatever order the files load in (in order, shuffled, several at once), the findings and the rollup come
out the same, equal to the day-by-day model of the history and to a direct aggregate of the events, and
``rollup rebuild`` reproduces them; re-imports and prunes change neither.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ingestor.config import load_settings
from ingestor.db.connect import Database
from ingestor.db.migrate import migrate
from ingestor.lifecycle import FindingsPolicy, rebuild
from ingestor.ops.imports import plan_import
from ingestor.ops.retention import prune
from ingestor.pipeline import Ingestor
from ingestor.simulator.history import History, standard_history

from fixtures.pg import MIGRATED_TEMPLATE
from fixtures.v1 import V1_SCHEMA, v1_insert_file

START = date(2026, 7, 5)  # a Sunday
HISTORY = standard_history(START, days=42)
ENV = {"SS_DELTA_TYPES": "scan_ssl", "FINDINGS_RESOLVE_DAYS": "3,event4_sinkhole=2"}
POLICY = FindingsPolicy(3, {"event4_sinkhole": 2}, frozenset({"scan_ssl"}))

FINDINGS = """
SELECT report_type, finding_key, first_seen, last_seen, state, resolved_at, reopen_count, times_seen,
       seen_days::text, severity, asn, geo, first_event_hash
FROM ss_findings ORDER BY 1, 2
"""
ROLLUP = """
SELECT report_date, report_type, severity, asn, geo, org_id, rows, subjects, new_findings, resolved_findings,
       reopened_findings
FROM ss_rollup_daily
WHERE rows <> 0 OR subjects <> 0 OR new_findings <> 0 OR resolved_findings <> 0 OR reopened_findings <> 0
ORDER BY 1, 2, 3, 4, 5, 6
"""
# Rows and subjects straight from the events: each finding counted once a day, under its first stored row.
DIRECT = """
SELECT report_date, report_type, COALESCE(severity, ''), COALESCE(asn, 0), COALESCE(geo, ''), count(*),
       count(*) FILTER (WHERE first_of_day)
FROM (SELECT *, row_number() OVER (PARTITION BY report_type, report_date,
                                   ss_finding_key(report_type, ip, port, raw_data, event_hash) ORDER BY id) = 1
                 AS first_of_day
      FROM ss_events) e
WHERE report_date >= %s
GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
"""


def rows(url: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(statement, params).fetchall()  # type: ignore[arg-type]


def load(url: str, paths: Sequence[Path], *, workers: int = 1, force: bool = False) -> None:
    """Import ``paths`` in the order given, ``workers`` files at a time."""
    settings = load_settings({"DATABASE_URL": url, "INGEST_WORKERS": str(workers), **ENV}, env_file=None)
    plan = plan_import(list(paths))
    assert not plan.problems
    by_path = {report.label: report for report in plan.reports}
    ordered = [by_path[str(path)] if str(path) in by_path else by_path[path.name] for path in paths]
    with Database(url, pool_size=workers + 2) as db:
        result = Ingestor(settings, db, None).run_files("import", ordered, force=force)
    assert result.status == "success", result.error


def expected_transitions(history: History) -> Counter[tuple[date, str, str, int, str, str]]:
    counts: Counter[tuple[date, str, str, int, str, str]] = Counter()
    sinkhole = {"event4_sinkhole": 2} if history is HISTORY else {}
    for item in history.expected(3, sinkhole).values():
        subject = item.subject
        for kind, day in item.transitions:
            counts[(day, item.report_type, subject.severity, subject.asn, subject.geo, kind)] += 1
    return counts


def rollup_transitions(url: str) -> Counter[tuple[date, str, str, int, str, str]]:
    counts: Counter[tuple[date, str, str, int, str, str]] = Counter()
    for day, rtype, severity, asn, geo, org, _rows, _subjects, new, resolved, reopened in rows(url, ROLLUP):
        assert org == 0  # no organisations yet
        for kind, number in (("new", new), ("resolved", resolved), ("reopened", reopened)):
            if number:
                counts[(day, rtype, severity, asn, geo, kind)] += number
    return counts


def rollup_counts(url: str, since: date) -> list[tuple[Any, ...]]:
    return [(r[0], r[1], r[2], r[3], r[4], r[6], r[7]) for r in rows(url, ROLLUP) if r[0] >= since and (r[6] or r[7])]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return HISTORY.write(tmp_path_factory.mktemp("history"))


@pytest.fixture
def in_order(migrated_db_url: str, files: list[Path]) -> str:
    load(migrated_db_url, files)
    return migrated_db_url


def test_findings_open_resolve_and_reopen_as_the_history_says(in_order: str) -> None:
    expected = HISTORY.expected(3, {"event4_sinkhole": 2})
    stored = {(r[0], r[1]): r for r in rows(in_order, FINDINGS)}
    assert set(stored) == set(expected)
    for key, item in expected.items():
        row = stored[key]
        assert (row[2], row[3], row[4], row[5], row[6]) == (
            item.first_seen,
            item.last_seen,
            item.state,
            item.resolved_at,
            item.reopen_count,
        ), key
    states = Counter(item.state for item in expected.values())
    assert states["resolved"] >= 10 and states["open"] >= 10
    assert sum(item.reopen_count for item in expected.values()) >= 4, "the history has reappearances"


def test_a_delta_day_resolves_nothing_and_a_day_without_a_file_proves_nothing(in_order: str) -> None:
    ssl = rows(
        in_order, "SELECT resolved_at FROM ss_findings WHERE report_type = 'scan_ssl' AND resolved_at IS NOT NULL"
    )
    assert ssl, "some scan_ssl findings are resolved, on full days only"
    assert {day.isoweekday() for (day,) in ssl} == {7}, "only Sunday's full reports resolve a delta type"
    days = rows(in_order, "SELECT report_date, delta FROM ss_report_days WHERE report_type = 'scan_ssl'")
    assert {d.isoweekday() == 7 for d, delta in days if not delta} == {True}
    rdp = HISTORY.types[0]
    gaps = {START + timedelta(days=n) for n in range(HISTORY.days)} - set(rdp.delivered)
    assert len(gaps) == 2
    resolved_on = {
        day for (day,) in rows(in_order, "SELECT resolved_at FROM ss_findings WHERE report_type = 'scan_rdp'")
    }
    assert not gaps & resolved_on


def test_the_rollup_equals_a_direct_aggregate_and_the_modelled_transitions(in_order: str) -> None:
    direct = [tuple(r) for r in rows(in_order, DIRECT, START)]
    assert rollup_counts(in_order, START) == direct
    assert rollup_transitions(in_order) == expected_transitions(HISTORY)
    sinkhole = rows(
        in_order,
        "SELECT sum(rows), sum(subjects) FROM ss_rollup_daily WHERE report_type = 'event4_sinkhole' AND org_id = 0",
    )
    ((events, subjects),) = sinkhole
    assert events > subjects, "two variants a day: more rows than subjects, each subject counted once a day"


def test_files_shuffled_and_loaded_in_parallel_give_the_same_findings_and_rollup(
    in_order: str, make_db_url: Any, files: list[Path]
) -> None:
    shuffled = make_db_url(template=MIGRATED_TEMPLATE)
    order = list(files)
    random.Random(7).shuffle(order)
    load(shuffled, order, workers=3)
    assert rows(shuffled, FINDINGS) == rows(in_order, FINDINGS)
    assert rows(shuffled, ROLLUP) == rows(in_order, ROLLUP)
    backwards = make_db_url(template=MIGRATED_TEMPLATE)
    load(backwards, list(reversed(files)), workers=1)
    assert rows(backwards, FINDINGS) == rows(in_order, FINDINGS)
    assert rows(backwards, ROLLUP) == rows(in_order, ROLLUP)


def test_reimports_prunes_and_rebuilds_leave_the_rollup_exact(in_order: str, files: list[Path]) -> None:
    findings, rollup = rows(in_order, FINDINGS), rows(in_order, ROLLUP)
    load(in_order, files[:40], force=True)  # every row a duplicate
    assert rows(in_order, FINDINGS)[0][:7] == findings[0][:7]
    assert rows(in_order, ROLLUP) == rollup

    with Database(in_order) as db, db.connection() as conn:
        rebuilt = rebuild(conn, POLICY)
    assert set(rebuilt) == {"scan_rdp", "scan_ssl", "event4_sinkhole", "scan_telnet"}
    assert rows(in_order, ROLLUP) == rollup
    assert [r[:7] for r in rows(in_order, FINDINGS)] == [r[:7] for r in findings]

    with Database(in_order) as db:
        result = prune(db, 14, today=HISTORY.end)
    assert result.events > 0
    cutoff = result.cutoff
    assert rows(in_order, ROLLUP) == rollup, "the rollup keeps the history a prune removes from ss_events"
    with Database(in_order) as db, db.connection() as conn:
        rebuild(conn, POLICY)
    assert rows(in_order, ROLLUP) == rollup, "a rebuild keeps the pruned dates and recomputes the others"
    assert rollup_counts(in_order, cutoff) == [tuple(r) for r in rows(in_order, DIRECT, cutoff)]


def test_an_upgraded_v1_database_gets_the_lifecycle_and_rollup_of_its_events(fresh_db_url: str) -> None:
    """Migration 0020 builds what the loader would have: from v1.0.0's events, with the defaults."""
    history = standard_history(START, days=28)
    history.types = [t for t in history.types if t.report_type.startswith("scan_")]  # v1.0.0's subject columns
    for item in history.types:
        item.delta = False  # the migration knows no SS_DELTA_TYPES
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(V1_SCHEMA)  # type: ignore[arg-type]
        for name, data in history.files():
            v1_insert_file(conn, name[11:].split("-history-")[0], date.fromisoformat(name[:10]), data)
        migrate(conn, viewer_role=None, use_schema_file=False)
    expected = history.expected(3)
    stored = {(r[0], r[1]): (r[2], r[3], r[4], r[5], r[6]) for r in rows(fresh_db_url, FINDINGS)}
    assert stored == {
        key: (e.first_seen, e.last_seen, e.state, e.resolved_at, e.reopen_count) for key, e in expected.items()
    }
    assert rollup_transitions(fresh_db_url) == expected_transitions(history)
    assert rollup_counts(fresh_db_url, START) == [tuple(r) for r in rows(fresh_db_url, DIRECT, START)]
