"""``findings``: findings by state, type, organisation and activity, streamed like ``search``'s events."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg

from ingestor.catalog import severities_at_least
from ingestor.ops.search import iter_rows
from ingestor.picture import QUERIES

COLUMNS = (
    "report_type",
    "finding_key",
    "state",
    "first_seen",
    "last_seen",
    "resolved_at",
    "days_to_fix",
    "reopen_count",
    "times_seen",
    "severity",
    "asn",
    "geo",
)
"""A finding: identity, lifecycle, and the severity, ASN and country of the row that first reported it."""

STATES = ("open", "resolved")


@dataclass(frozen=True)
class FindingFilter:
    """The filters of ``findings``; all given ones must match."""

    state: str | None = None
    types: tuple[str, ...] = ()
    org_id: int | None = None
    since: date | None = None
    severity: str | None = None
    asns: tuple[int, ...] = ()

    def params(self, limit: int | None) -> dict[str, Any]:
        return {
            "state": self.state,
            "types": list(self.types) or None,
            "org_id": self.org_id,
            "since": self.since,
            "severities": severities_at_least(self.severity) if self.severity else None,
            "asns": list(self.asns) or None,
            "limit": limit,
        }

    def describe(self) -> str:
        parts = [self.state or "open and resolved"]
        if self.types:
            parts.append("type " + ",".join(self.types))
        if self.org_id is not None:
            parts.append(f"organisation {self.org_id}")
        if self.since:
            parts.append(f"active since {self.since}")
        if self.severity:
            parts.append(f"severity >= {self.severity}")
        if self.asns:
            parts.append("asn " + ",".join(str(asn) for asn in self.asns))
        return "; ".join(parts)


def list_findings(
    conn: psycopg.Connection[Any], filters: FindingFilter, limit: int | None
) -> Generator[dict[str, Any], None, None]:
    """Findings matching ``filters``, the most recently active first (seen, or resolved, latest)."""
    return iter_rows(conn, QUERIES["list_findings"], filters.params(limit))


def organisation_id(conn: psycopg.Connection[Any], name: str) -> int:
    """The id of the organisation named ``name`` (``orgs list``): the one place ``--org`` is resolved here;
    ss_findings.org_ids and ss_rollup_daily.org_id hold the ids."""
    from ingestor.constituents.store import org_id

    found = org_id(conn, name)
    if found is None:
        raise ValueError(f"no organisation named {name!r} (see `orgs list`)")
    return found
