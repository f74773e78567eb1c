"""Operator commands on the stored data: status, search, new findings, local imports, the report-type
inventory and retention.

    filters     parse and validate search filters (IP/CIDR, ASN, hostname, type, severity, dates, text)
    search      stream events (``search``) and new findings (``new``) through a server-side cursor
    formats     write rows as a table, CSV, JSON or NDJSON
    status      the health of ingestion from the audit log, the ledger and the events
    imports     local report files (plain, ``.gz``, ``.zip``) as pipeline sources
    inventory   report types: catalog, database, ledger and the API
    retention   delete old events in short batches; prune ledger and audit by their own settings

The SQL lives in ``ingestor/db/sql/ops.sql``.
"""

from __future__ import annotations

from importlib import resources

from ingestor.db.queries import parse_queries

QUERIES = parse_queries(resources.files("ingestor.db").joinpath("sql", "ops.sql").read_text(encoding="utf-8"))
"""The operator commands' named statements: ``QUERIES["search_events"]``."""
