"""Search filters: parsed and validated once, then bound as parameters of ``search_events``/``new_findings``.

Every parser raises ``ValueError`` with a message written for the operator; the CLI turns it into a
one-line usage error. Which index serves which filter (see ``ops.sql`` and the plan tests):

    --ip        idx_ss_events_ip (btree range scan: inet ``<<=`` becomes ``>= low AND <= high``)
    --asn       idx_ss_events_asn
    --hostname  idx_ss_events_hostname for an exact name; ``*.example.com`` has no index (LIKE '%...')
    --type      the unique key (report_type, report_date, event_hash), with --since/--until as its 2nd column
    --since/--until  the unique key (report_date DESC NULLS LAST, report_type, event_hash)
    --severity, --tag, --text   no index: checked on the rows the other filters find, or while walking
                the report-date index newest first until the limit is reached
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from ingestor.catalog import MAX_ASN, SEVERITIES, TYPE_NAME, severities_at_least

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?\.?$")
_RELATIVE_DAYS = re.compile(r"^(\d{1,5})d$")


def parse_network(value: str) -> Network:
    """An IP address (as a /32 or /128) or a CIDR network; host bits are ignored (``192.0.2.7/24``)."""
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(f"not an IP address or CIDR network: {value!r}") from None


def parse_asn(value: str) -> int:
    """``64500`` or ``AS64500``; 1 to 4294967295."""
    text = value.strip().upper().removeprefix("AS")
    if not text.isdigit() or not 1 <= int(text) <= MAX_ASN:
        raise ValueError(f"not an AS number (1 to {MAX_ASN}, optionally written AS64500): {value!r}")
    return int(text)


def parse_hostname(value: str) -> tuple[str | None, str | None]:
    """An exact hostname, or ``*.example.com`` (any name below example.com): ``(exact, suffix)``.

    Hostnames are stored lowercase, so the input is lowercased too.
    """
    text = value.strip().lower()
    if not _HOSTNAME.match(text):
        raise ValueError(f"not a hostname or *.domain pattern: {value!r}")
    text = text.rstrip(".")
    if text.startswith("*."):
        return None, text[1:]
    return text, None


def parse_type_name(value: str) -> str:
    text = value.strip()
    if not TYPE_NAME.match(text):
        raise ValueError(f"not a report type name (lowercase letters, digits, underscores): {value!r}")
    return text


def parse_severity(value: str) -> str:
    text = value.strip().lower()
    if text not in SEVERITIES:
        raise ValueError(f"not a severity ({', '.join(SEVERITIES)}): {value!r}")
    return text


def parse_day(value: str, today: date) -> date:
    """``YYYY-MM-DD``, ``today``, ``yesterday`` or ``<N>d`` (N days before today)."""
    text = value.strip().lower()
    if text == "today":
        return today
    if text == "yesterday":
        return today - timedelta(days=1)
    relative = _RELATIVE_DAYS.match(text)
    if relative:
        return today - timedelta(days=int(relative.group(1)))
    try:
        return date.fromisoformat(text) if len(text) == 10 else _invalid_day(value)
    except ValueError:
        return _invalid_day(value)


def _invalid_day(value: str) -> date:
    raise ValueError(f"not a date (YYYY-MM-DD, today, yesterday or Nd for N days ago): {value!r}")


def like_escape(text: str) -> str:
    """Escape LIKE's wildcards (``%``, ``_``) and its escape character, so ``text`` matches literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains_pattern(text: str) -> str:
    """An ILIKE pattern matching ``text`` anywhere."""
    return "%" + like_escape(text) + "%"


def check_window(since: date | None, until: date | None) -> None:
    """Refuse a report-date window that ends before it starts (ValueError, one line)."""
    if since and until and since > until:
        raise ValueError(f"--since {since} is after --until {until}")


@dataclass(frozen=True)
class EventFilter:
    """The filters of ``search`` and ``new``; all given ones must match."""

    network: Network | None = None
    asns: tuple[int, ...] = ()
    hostname: str | None = None
    hostname_suffix: str | None = None
    types: tuple[str, ...] = ()
    severity: str | None = None
    since: date | None = None
    until: date | None = None
    tag: str | None = None
    text: str | None = None
    org: str | None = None
    org_id: int | None = None
    """The organisation's id, resolved from ``org`` (its name) by the command before querying."""

    def __post_init__(self) -> None:
        check_window(self.since, self.until)

    @property
    def severities(self) -> list[str] | None:
        return severities_at_least(self.severity) if self.severity else None

    def params(self, limit: int | None, *, with_raw: bool = True) -> dict[str, Any]:
        """Bind values of ``search_events``/``new_findings`` (absent filters are NULL)."""
        return {
            "with_raw": with_raw,
            "ip": self.network,
            "asns": list(self.asns) or None,
            "hostname": self.hostname,
            "hostname_like": "%" + like_escape(self.hostname_suffix) if self.hostname_suffix else None,
            "types": list(self.types) or None,
            "severities": self.severities,
            "since": self.since,
            "until": self.until,
            "tag": contains_pattern(self.tag) if self.tag else None,
            "text": contains_pattern(self.text) if self.text else None,
            "org_id": self.org_id,
            "limit": limit,
        }

    def describe(self) -> str:
        """A short human description of the active filters."""
        parts: list[str] = []
        if self.network is not None:
            parts.append(f"ip in {self.network}" if self.network.num_addresses > 1 else f"ip {self.network[0]}")
        if self.asns:
            parts.append("asn " + ",".join(str(asn) for asn in self.asns))
        if self.hostname:
            parts.append(f"hostname {self.hostname}")
        if self.hostname_suffix:
            parts.append(f"hostname *{self.hostname_suffix}")
        if self.types:
            parts.append("type " + ",".join(self.types))
        if self.severity:
            parts.append(f"severity >= {self.severity}")
        if self.since or self.until:
            parts.append(f"report date {self.since or '...'} to {self.until or '...'}")
        if self.tag:
            parts.append(f"tag ~ {self.tag!r}")
        if self.text:
            parts.append(f"text ~ {self.text!r}")
        if self.org:
            parts.append(f"organisation {self.org}")
        return "; ".join(parts) or "no filter"
