"""Load one report file into ``ss_events``.

A parse worker process (``parse/worker.py``) reads, normalises, hashes and formats the file in batches
(repeats inside a batch are dropped there); the caller's connection takes each batch through four steps:

1. COPY the batch's row identities (position, ``event_hash``, v1.0.0's ISO-8859-1 hash, the inputs of the
   finding key) into a small temporary staging table;
2. probe ``ss_events`` for the rows already stored (in earlier files, or in earlier batches of this file,
   which the transaction sees): one unique-index lookup per row, and, for the rare rows with non-ASCII
   text, one more for the hash v1.0.0 gave them;
3. COPY the other rows straight into ``ss_events``;
4. note the finding key of each inserted row in a second staging table, with the typed columns the
   rollup counts it under (read back through the unique key: pages the COPY has just written).

This is "COPY into staging, then deduplicate" with only the key in staging: new rows are written once, by
COPY, instead of twice (staging, then ``INSERT ... SELECT ... ON CONFLICT``), and a batch of duplicates
costs one index probe per row. Every statement is served by its index whatever the planner's statistics
say (see ``db/sql/queries.sql``). The ingestion lock keeps other ingestors out meanwhile; should another
writer slip in anyway, the unique key rejects the COPY and the file fails, to be loaded whole later. At
the end the file's new rows update ``ss_reports``, and the finding lifecycle and the daily rollup
(``lifecycle.py``) under the report type's lock.

Organisations: the loader reads the constituents' matcher (``constituents/matcher.py``, cached per version)
at the start of each file and the parse worker matches every row with it. For statements that run later in
the file's transaction: each staged key row carries its event's organisations, ``ss_stage_keys.org_ids``
(``INTEGER[]``, NULL = no owner), and the inserted rows are the staged positions minus the stored ones
(as in ``stage_findings``).

Everything happens inside the caller's transaction: a file is loaded whole or not at all. Counts always
add up: ``rows_read = inserted + duplicates + rejected``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

from ingestor.catalog import Catalog, ReportType
from ingestor.constituents.matcher import Matcher, matcher_for
from ingestor.db.queries import QUERIES
from ingestor.errors import StopRequested
from ingestor.lifecycle import DEFAULT_POLICY, FindingsPolicy, apply_file
from ingestor.parse.batches import Batch, LoadStats, copy_text, read_header
from ingestor.parse.content import check_header
from ingestor.parse.worker import discard_worker, shared_worker

log = logging.getLogger(__name__)

__all__ = ["LoadStats", "counts_json", "load_report"]

COPY_CHUNK_BYTES = 1 << 20
BATCH_ORDER_BITS = 21
"""A row's order in its file is batch number << 21 | position in the batch (batches hold at most 1M rows)."""


@dataclass(frozen=True)
class _File:
    path: Path
    report: ReportType
    params: dict[str, Any]
    prefix: str
    batch_rows: int
    stop: threading.Event
    progress: Callable[[int], None] | None
    findings: FindingsPolicy
    matcher: Matcher | None


def load_report(
    conn: psycopg.Connection[Any],
    path: Path,
    *,
    report_type: str,
    report_date: date,
    file_id: int,
    catalog: Catalog,
    batch_rows: int = 5_000,
    stop: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
    findings: FindingsPolicy = DEFAULT_POLICY,
) -> LoadStats:
    """Load the report CSV at ``path``; the caller owns (and commits) the transaction."""
    started = time.monotonic()
    with path.open("rb") as stream:
        header = read_header(stream)
    if not header:
        return LoadStats()
    report = catalog.get(report_type, header)  # a retired type name loads as the current type it became
    check_header(header, report)  # an HTML page, a JSON error, unrelated columns: fail, never "loaded"
    params = {"report_type": report.type, "report_date": report_date, "file_id": file_id}
    prefix = f"{copy_text(report.type)}\t{report_date.isoformat()}\t{file_id}\t"
    matcher = matcher_for(conn)
    file = _File(path, report, params, prefix, batch_rows, stop or threading.Event(), progress, findings, matcher)
    stats = _load(conn, file)
    stats.known_type = report.known
    if report.known:
        current = [report.current_name(column) for column in header]
        stats.columns_unknown = [c for c, name in zip(header, current, strict=True) if name not in report.fields]
        stats.columns_missing = [c for c in report.fields if c not in current]
    stats.seconds = time.monotonic() - started
    return stats


def _load(conn: psycopg.Connection[Any], file: _File) -> LoadStats:
    inserted = duplicates = batches = 0
    conn.execute(QUERIES["create_key_stage"])
    conn.execute(QUERIES["create_findings_stage"])
    stats: LoadStats | None = None
    try:
        for message in shared_worker().parse(file.path, file.report, file.prefix, file.batch_rows, file.matcher):
            if isinstance(message, LoadStats):
                stats = message
                break
            if file.stop.is_set():
                raise StopRequested("stop requested while loading; the file's transaction is abandoned")
            new = _insert_batch(conn, message, {**file.params, "batch_base": batches << BATCH_ORDER_BITS})
            batches += 1
            inserted += new
            duplicates += message.rows - new
            if file.progress is not None:
                file.progress(message.rows)
    except BaseException:
        discard_worker()  # it is half-way through the file
        raise
    assert stats is not None
    stats.inserted = inserted
    stats.duplicates += duplicates
    apply_file(
        conn,
        report_type=file.report.type,
        report_date=file.params["report_date"],
        policy=file.findings,
        stage=stats.inserted > 0,
    )
    if stats.rows_read:
        conn.execute(QUERIES["add_report_count"], {**file.params, "inserted": stats.inserted})
    for sample in stats.samples:
        conn.execute(
            QUERIES["insert_rejected_row"],
            {
                "file_id": file.params["file_id"],
                "line": sample.line,
                "reason": sample.reason,
                "detail": sample.detail,
                "excerpt": sample.excerpt,
            },
        )
    return stats


def _insert_batch(conn: psycopg.Connection[Any], batch: Batch, params: dict[str, Any]) -> int:
    """Probe the batch's keys, COPY its new rows and stage their findings; return how many were inserted."""
    conn.execute(QUERIES["truncate_key_stage"])
    with conn.cursor().copy(QUERIES["copy_key_stage"]) as copy:
        copy.write(batch.keys)
    stored = {row[0] for row in conn.execute(QUERIES["existing_keys"], params)}
    if batch.legacy:
        stored.update(row[0] for row in conn.execute(QUERIES["existing_legacy_keys"], params))
    data, rows = batch.data, batch.rows
    if stored:
        lines = data.split(b"\n")[:-1]
        kept = [line for position, line in enumerate(lines) if position not in stored]
        data = b"".join(line + b"\n" for line in kept)
        rows = len(kept)
    if rows:
        with conn.cursor().copy(QUERIES["copy_events"]) as copy:
            view = memoryview(data)
            for offset in range(0, len(view), COPY_CHUNK_BYTES):  # keeps libpq's send buffer small
                copy.write(view[offset : offset + COPY_CHUNK_BYTES])
        conn.execute(QUERIES["stage_findings"], {**params, "stored": sorted(stored)})
    return rows


def counts_json(counter: Counter[str]) -> str:
    return json.dumps(dict(sorted(counter.items())))
