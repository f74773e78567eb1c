"""The picture of the data and of the feed: findings and their lifecycle, trends, the HTML report, and the
alarms on the feed itself (docs/findings.md, docs/report.md).

    findings    list findings by state, type, organisation, activity
    feed        alarms on the feed: a type that stopped arriving, empty cycles, no subscriptions, column drift
    trends      the rollup as terminal sparklines
    charts      the report's charts, rendered to SVG by matplotlib
    report      the self-contained HTML report

The SQL lives in ``ingestor/db/sql/picture.sql``; none of it reads ``ss_events``.
"""

from __future__ import annotations

from importlib import resources

from ingestor.db.queries import parse_queries

QUERIES = parse_queries(resources.files("ingestor.db").joinpath("sql", "picture.sql").read_text(encoding="utf-8"))
"""The named statements of ``picture.sql``."""
