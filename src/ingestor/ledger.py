"""The per-file ledger (``ss_report_files``): each listed or imported file once, with its fate.

A file is identified by a *source key*: the SHA-256 of its API download id (the id itself is a bearer
capability and is never stored) or, for imported files, the SHA-256 of its content. A file whose status
is ``loaded`` is never downloaded again; any other status is retried on the next cycle that lists it,
up to ``SS_MAX_FILE_ATTEMPTS`` attempts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg

from ingestor.db.queries import QUERIES
from ingestor.load import LoadStats, counts_json
from ingestor.redaction import redact

MAX_ERROR_CHARS = 1000


@dataclass(frozen=True)
class FileState:
    status: str
    attempts: int


def api_source_key(report_id: str) -> str:
    return "api:" + hashlib.sha256(report_id.encode("utf-8")).hexdigest()


def content_source_key(sha256: str) -> str:
    return "file:" + sha256


def file_states(conn: psycopg.Connection[Any], keys: Iterable[str]) -> dict[str, FileState]:
    rows = conn.execute(QUERIES["file_states"], {"keys": list(keys)}).fetchall()
    return {row[0]: FileState(row[1], row[2]) for row in rows}


def claim_file(
    conn: psycopg.Connection[Any],
    *,
    source: str,
    source_key: str,
    report_type: str,
    report_date: date,
    file_name: str,
    subscription: str,
    run_id: int | None,
) -> int:
    """Mark a file ``loading`` (committed at once) and return its ledger id."""
    row = conn.execute(
        QUERIES["claim_file"],
        {
            "source": source,
            "source_key": source_key,
            "report_type": report_type,
            "report_date": report_date,
            "file_name": file_name,
            "subscription": subscription,
            "run_id": run_id,
        },
    ).fetchone()
    assert row is not None
    return int(row[0])


def mark_loaded(
    conn: psycopg.Connection[Any],
    file_id: int,
    stats: LoadStats,
    *,
    size_bytes: int,
    sha256: str,
    download_seconds: float | None,
) -> None:
    """Record a loaded file; call inside the transaction that loaded its rows."""
    conn.execute(
        QUERIES["file_loaded"],
        {
            "id": file_id,
            "size_bytes": size_bytes,
            "sha256": sha256,
            "rows_read": stats.rows_read,
            "rows_inserted": stats.inserted,
            "rows_duplicate": stats.duplicates,
            "rows_rejected": stats.rejected,
            "anomalies": counts_json(stats.anomalies),
            "rejects": counts_json(stats.rejects),
            "known_type": stats.known_type,
            "columns_unknown": stats.columns_unknown or None,
            "columns_missing": stats.columns_missing or None,
            "download_seconds": download_seconds,
            "load_seconds": stats.seconds,
        },
    )


def mark_failed(
    conn: psycopg.Connection[Any],
    file_id: int,
    error: str,
    *,
    interrupted: bool = False,
    size_bytes: int | None = None,
    sha256: str | None = None,
    download_seconds: float | None = None,
) -> None:
    """Record a file that failed (retried later) or was interrupted by a shutdown."""
    conn.execute(
        QUERIES["file_failed"],
        {
            "id": file_id,
            "status": "interrupted" if interrupted else "failed",
            "error": redact(error)[:MAX_ERROR_CHARS],
            "size_bytes": size_bytes,
            "sha256": sha256,
            "download_seconds": download_seconds,
        },
    )


def lock_holders(conn: psycopg.Connection[Any]) -> list[str]:
    """Other sessions holding table locks on ``ss_*`` tables that block writes: how an operator finds them."""
    rows = conn.execute(QUERIES["lock_holders"]).fetchall()
    return [
        redact(
            f"{relname} {mode} by backend {pid} ({application or 'unnamed'}, user {user}, since {since:%H:%M:%S}"
            f" UTC: {query})"
        )
        for relname, mode, pid, user, application, since, query in rows
    ]
