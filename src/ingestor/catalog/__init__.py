"""Report-type knowledge as data: columns, subject side and default severity of every report type.

The catalog is generated from Shadowserver's published ``reports.json`` (see ``refresh.py``) and shipped
as ``catalog.json``. Nothing elsewhere branches on report-type names: the subject columns of a row come
from its type's entry here, or, for a type the catalog does not know, from the same rule applied to the
file's header (:func:`subject_from_columns`).

Older formats, met in archives people import, are data too (``legacy.json``, not touched by a refresh):
columns Shadowserver renamed (``host`` -> ``hostname`` in the URL and sandbox reports before 2023-11-16),
which the normaliser reads under their old names, and retired type names (``botnet_drone``,
``microsoft_sinkhole``, ...), which load as the current type they became, with the subject columns of
their own format.

``catalog refresh`` never writes into the installed package: it writes ``catalog.json`` in the data
directory (``SS_DATA_DIR``). :func:`load_catalog` uses that file when it exists and is not older than the
shipped one (an upgrade of the package brings a newer catalog, which a stale refreshed copy must not
hide), else the shipped catalog. The file is looked at again on every call (its modification time and
size; parsed only when they change), so a running service picks a refresh up at its next cycle.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SUBJECT_PREFIXES = ("", "src_", "dst_", "http_referer_")
"""Column prefixes that can name a row's subject; the first ``<prefix>ip`` column in order wins."""

TYPE_NAME = re.compile(r"^[a-z0-9_]+$")
"""What a report type's name may be (report types use underscores, never hyphens: see the file names)."""

MAX_ASN = 4_294_967_295
"""The largest AS number (4-byte ASNs)."""

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
    aliases: tuple[tuple[str, str], ...] = ()
    """Columns of older files under their old names: (old name, current name)."""
    delivered_as: str | None = None
    """The retired type name a file was delivered under, when it was (``type`` is the current one)."""

    def current_name(self, column: str) -> str:
        """The current name of a column of this type (an old name becomes the name it was renamed to)."""
        for old, new in self.aliases:
            if column == old:
                return new
        return column

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


@dataclass(frozen=True, slots=True)
class LegacyType:
    """A retired report type name: the current type it became, and its own format where known."""

    canonical: str
    fields: tuple[str, ...] = ()
    subject: Subject | None = None


@dataclass(frozen=True)
class Legacy:
    """Older formats (``legacy.json``): renamed columns per current type, retired type names."""

    columns: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    types: dict[str, LegacyType] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Legacy:
        columns = {name: tuple(sorted(renames.items())) for name, renames in data.get("columns", {}).items()}
        types = {
            name: LegacyType(
                canonical=entry["canonical"],
                fields=tuple(entry.get("fields") or ()),
                subject=Subject(**entry["subject"]) if entry.get("subject") else None,
            )
            for name, entry in data.get("types", {}).items()
        }
        return cls(columns, types)


@dataclass(frozen=True)
class Catalog:
    """All report types known from the published schema, with a generic fallback for the others."""

    types: dict[str, ReportType]
    source: dict[str, Any] = field(default_factory=dict)
    legacy: Legacy = field(default_factory=Legacy)
    path: Path | None = field(default=None, compare=False)
    """The file it was read from; ``None`` for the catalog shipped with the package."""

    def __contains__(self, report_type: object) -> bool:
        return report_type in self.types or report_type in self.legacy.types

    def __len__(self) -> int:
        return len(self.types)

    def canonical(self, report_type: str) -> str:
        """The current name of a report type (a retired name becomes the type it was renamed to)."""
        legacy = self.legacy.types.get(report_type)
        return legacy.canonical if legacy is not None else report_type

    def get(self, report_type: str, columns: Sequence[str] = ()) -> ReportType:
        """The type's entry for a file with these columns; a generic entry from the header for unknown types."""
        legacy = self.legacy.types.get(report_type)
        if legacy is not None:
            current = self._entry(legacy.canonical, columns)
            subject = legacy.subject if legacy.subject is not None and legacy.subject.ip in columns else current.subject
            return replace(
                current, fields=legacy.fields or current.fields, subject=subject, known=True, delivered_as=report_type
            )
        return self._entry(report_type, columns)

    def _entry(self, report_type: str, columns: Sequence[str]) -> ReportType:
        known = self.types.get(report_type)
        if known is not None:
            aliases = self.legacy.columns.get(report_type)
            return replace(known, aliases=aliases) if aliases else known
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
    def from_dict(cls, data: dict[str, Any], legacy: Legacy | None = None) -> Catalog:
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
        return cls(types=types, source=dict(data.get("source", {})), legacy=legacy or shipped_legacy())

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "types": {name: self.types[name].as_dict() for name in sorted(self.types)},
        }


CATALOG_FILE = "catalog.json"
LEGACY_FILE = "legacy.json"
DATA_DIR_VARIABLE = "SS_DATA_DIR"

_configured_data_dir: Path | None = None
_lock = threading.Lock()
_loaded: dict[Path, tuple[tuple[int, int, int], Catalog | None]] = {}
"""Per data-dir file: the (inode, mtime, size) it was read at, and what it held (``None``: unusable)."""


def default_data_dir() -> Path:
    """``/var/lib/shadowserver-ingestor`` as root, else ``~/.local/share/shadowserver-ingestor``: the directory
    that holds the embedded database's default ``pgdata``."""
    from ingestor.db.embedded import default_data_dir as default_pgdata

    return default_pgdata().parent


def configure_data_dir(path: Path | None) -> None:
    """The data directory of this process (the CLI passes ``SS_DATA_DIR`` from its settings, ``.env``
    included); ``None`` = the ``SS_DATA_DIR`` environment variable, else :func:`default_data_dir`."""
    global _configured_data_dir
    _configured_data_dir = path


def data_dir() -> Path:
    """The data directory in force (see :func:`configure_data_dir`)."""
    if _configured_data_dir is not None:
        return _configured_data_dir
    if os.environ.get(DATA_DIR_VARIABLE):
        return Path(os.environ[DATA_DIR_VARIABLE])
    return default_data_dir()


def data_catalog_path() -> Path:
    """Where ``catalog refresh`` writes and :func:`load_catalog` looks: ``<data dir>/catalog.json``."""
    return data_dir() / CATALOG_FILE


def load_catalog(path: Path | None = None) -> Catalog:
    """Load a catalog file; by default the catalog in force: the data directory's when present and not older
    than the shipped one, else the shipped one (see the module docstring)."""
    if path is not None:
        return _read(path)
    shipped = _shipped_catalog()
    refreshed = _data_catalog(data_catalog_path())
    if refreshed is None:
        return shipped
    if str(refreshed.source.get("generated_at", "")) < str(shipped.source.get("generated_at", "")):
        return shipped  # the package was upgraded since the refresh: _data_catalog() said so once
    return refreshed


def _read(path: Path) -> Catalog:
    catalog = Catalog.from_dict(json.loads(path.read_text(encoding="utf-8")))
    return replace(catalog, path=path)


def _data_catalog(path: Path) -> Catalog | None:
    """The refreshed catalog at ``path``, read again only when the file changed; ``None`` if absent or unusable."""
    try:
        stat = path.stat()
    except OSError:
        return None
    stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    with _lock:
        cached = _loaded.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        catalog: Catalog | None
        try:
            catalog = _read(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring the catalog %s (%s: %s); using the shipped one", path, type(exc).__name__, exc)
            catalog = None
        else:
            shipped = _shipped_catalog()
            if str(catalog.source.get("generated_at", "")) < str(shipped.source.get("generated_at", "")):
                log.warning(
                    "the shipped catalog (%s) is newer than %s (%s): using the shipped one; `catalog refresh`"
                    " updates the file",
                    shipped.source.get("generated_at"),
                    path,
                    catalog.source.get("generated_at"),
                )
            elif cached is not None:
                log.info("catalog %s changed: %d report types (%s)", path, len(catalog), catalog.source.get("origin"))
        _loaded[path] = (stamp, catalog)
        return catalog


@cache
def shipped_legacy() -> Legacy:
    """The older formats shipped with the package."""
    return Legacy.from_dict(
        json.loads(resources.files("ingestor.catalog").joinpath(LEGACY_FILE).read_text(encoding="utf-8"))
    )


@cache
def _shipped_catalog() -> Catalog:
    text = resources.files("ingestor.catalog").joinpath(CATALOG_FILE).read_text(encoding="utf-8")
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
