"""Constituents: the organisations a CERT serves, their abuse contacts and networks, and who owns an event.

    model      an organisation as validated input (CIDRs, ASNs, domains, contacts, notification settings)
    files      ``orgs import``: CSV and YAML files, every line validated before anything is written
    ripe       RIPE database bulk split files (inetnum, inet6num, aut-num, organisation, role)
    store      the tables: replace organisations atomically, list, show, remove, the version token
    matcher    the event -> organisations rule, a picklable structure the parse worker applies per row
    rematch    recompute ``ss_events.org_ids`` after the constituents changed

The SQL lives in ``ingestor/db/sql/orgs.sql``. See docs/constituents.md.
"""

from __future__ import annotations

from importlib import resources

from ingestor.db.queries import parse_queries

QUERIES = parse_queries(resources.files("ingestor.db").joinpath("sql", "orgs.sql").read_text(encoding="utf-8"))
"""The constituents' and notifications' named statements."""
