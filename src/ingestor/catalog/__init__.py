"""Report-type knowledge as data: columns, subject side and default severity of every report type.

The catalog is generated from Shadowserver's published ``reports.json`` (see ``refresh.py``) and shipped
as ``catalog.json``. Nothing elsewhere branches on report-type names: the subject columns of a row come
from its type's entry here, or, for a type the catalog does not know, from the same rule applied to the
file's header (:func:`subject_from_columns`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

SUBJECT_PREFIXES = ("", "src_", "dst_", "http_referer_")
"""Column prefixes that can name a row's subject; the first ``<prefix>ip`` column in order wins."""

SEVERITIES = ("critical", "high", "medium", "low", "info")
"""Shadowserver's severity levels, most severe first."""


@dataclass(frozen=True, slots=True)
class Subject:
    """Which CSV columns describe the host in the subscriber's network that a row is about."""

    ip: str | None = None
    port: str | None = None
    asn: str | None = None
    geo: str | None = None
    hostname: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"ip": self.ip, "port": self.port, "asn": self.asn, "geo": self.geo, "hostname": self.hostname}


@dataclass(frozen=True, slots=True)
class ReportType:
    """One report type of the catalog."""

    type: str
    name: str
    family: str
    fields: tuple[str, ...]
    subject: Subject
    default_severity: str | None = None
    url: str | None = None
    taxonomy: str | None = None
    classification_type: str | None = None
    known: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "url": self.url,
            "taxonomy": self.taxonomy,
            "classification_type": self.classification_type,
            "default_severity": self.default_severity,
            "subject": self.subject.as_dict(),
            "fields": list(self.fields),
        }


def subject_from_columns(columns: Sequence[str]) -> Subject:
    """Derive the subject columns from an ordered column list.

    The subject prefix is the one of the first IP column (``ip``, ``src_ip``, ``dst_ip``,
    ``http_referer_ip``) in order; port, ASN, country and hostname are the columns with the same prefix
    when present. Without an IP column only ``geo`` can describe the subject. Applied to Shadowserver's
    schema order this reproduces the documented mapping of every family (``dst_*`` for
    ``event4_honeypot_ddos_target``, ``http_referer_*`` for the sinkhole referer reports).
    """
    present = set(columns)
    ip_columns = {f"{prefix}ip": prefix for prefix in SUBJECT_PREFIXES}
    for column in columns:
        prefix = ip_columns.get(column)
        if prefix is not None:

            def pick(name: str, prefix: str = prefix) -> str | None:
                return f"{prefix}{name}" if f"{prefix}{name}" in present else None

            return Subject(ip=column, port=pick("port"), asn=pick("asn"), geo=pick("geo"), hostname=pick("hostname"))
    return Subject(geo="geo" if "geo" in present else None)


def family_of(report_type: str) -> str:
    """Classify a report type into its column family: ``event``, ``scan`` or ``other``."""
    if report_type.startswith(("event4_", "event6_")):
        return "event"
    if (
        report_type.startswith(("scan_", "scan6_", "population", "device_id", "compromised_website", "compromised_iot"))
        or report_type == "special"
    ):
        return "scan"
    return "other"


@dataclass(frozen=True)
class Catalog:
    """All report types known from the published schema, with a generic fallback for the others."""

    types: dict[str, ReportType]
    source: dict[str, Any] = field(default_factory=dict)

    def __contains__(self, report_type: object) -> bool:
        return report_type in self.types

    def __len__(self) -> int:
        return len(self.types)

    def get(self, report_type: str, columns: Sequence[str] = ()) -> ReportType:
        """Return the type's entry, or a generic entry derived from the file's header for unknown types."""
        known = self.types.get(report_type)
        if known is not None:
            return known
        return ReportType(
            type=report_type,
            name=report_type,
            family=family_of(report_type),
            fields=tuple(columns),
            subject=subject_from_columns(columns),
            known=False,
        )

    def names(self) -> list[str]:
        return sorted(self.types)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Catalog:
        types = {
            name: ReportType(
                type=name,
                name=entry["name"],
                family=entry["family"],
                fields=tuple(entry["fields"]),
                subject=Subject(**entry["subject"]),
                default_severity=entry.get("default_severity"),
                url=entry.get("url"),
                taxonomy=entry.get("taxonomy"),
                classification_type=entry.get("classification_type"),
            )
            for name, entry in data["types"].items()
        }
        return cls(types=types, source=dict(data.get("source", {})))

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "types": {name: self.types[name].as_dict() for name in sorted(self.types)},
        }


CATALOG_FILE = "catalog.json"


def load_catalog(path: Path | None = None) -> Catalog:
    """Load a catalog file; by default the one shipped with the package (cached)."""
    if path is None:
        return _shipped_catalog()
    return Catalog.from_dict(json.loads(path.read_text(encoding="utf-8")))


@cache
def _shipped_catalog() -> Catalog:
    text = resources.files(__package__).joinpath(CATALOG_FILE).read_text(encoding="utf-8")
    return Catalog.from_dict(json.loads(text))


def severity_rank(severity: str) -> int:
    """Rank a severity (0 = critical); unknown values rank below ``info``."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        return len(SEVERITIES)


def severities_at_least(severity: str) -> list[str]:
    """The severities at or above ``severity`` (``high`` -> critical, high)."""
    return list(SEVERITIES[: severity_rank(severity) + 1])
