"""What a simulator serves: keys, subscriber scope, report inventory options, CSV style and malformed rows.

Everything here is fixed when the :class:`~ingestor.simulator.state.Simulator` is built, because it decides
the bytes of the report files and a file must be identical on every download. Behaviour that tests switch
on and off while the simulator runs (errors, latency, truncated downloads) lives in
:mod:`ingestor.simulator.faults`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

DEFAULT_TYPES = (
    "scan_ssl",
    "scan_http",
    "device_id",
    "event4_sinkhole",
    "event4_honeypot_ddos_target",
    "event4_sinkhole_http_referer",
    "blocklist",
    "compromised_account",
)
"""A realistic small mix across the scan, event and other families (subject on ``ip``, ``src_ip``,
``dst_ip``, ``http_referer_ip`` and no IP at all)."""

DEFAULT_ROWS = 100
"""Rows per generated report when neither ``rows`` nor its ``"*"`` entry says otherwise."""

MALFORMATIONS = (
    "extra_cells",
    "missing_cells",
    "invalid_ip",
    "nul_byte",
    "non_utf8",
    "huge_field",
    "asn_zero",
    "asn_overflow",
)
"""Kinds of malformed rows; ``Report.injected`` counts rows per kind."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One API key with its secret and what ``key/info`` reports about it."""

    key: str = "demo-key"
    secret: str = "demo-secret"
    subscriptions: tuple[str, ...] = ("example-org",)
    user: str = "demo"
    label: str = "simulator"
    status: str = "active"
    access: tuple[str, ...] = ("reports",)
    query_permission: bool = False
    query_limit: int = 0
    query_count: int = 0


@dataclass(frozen=True, slots=True)
class Scope:
    """The subscriber's network: subject IPs, ASNs and countries of generated rows fall inside it."""

    ipv4: tuple[str, ...] = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
    ipv6: tuple[str, ...] = ("2001:db8::/32",)
    asns: tuple[int, ...] = (64496, 64511, 4200000001)
    geo: tuple[str, ...] = ("NL", "DE", "US")


@dataclass(frozen=True, slots=True)
class CsvStyle:
    """How report files are written. The defaults are today's Shadowserver format (API doc §6.5)."""

    timestamp_z: bool = True
    """``False`` writes legacy timestamps without the ``Z`` suffix."""
    tag_separator: str = ";"
    line_terminator: str = "\n"
    quote_numbers: bool = False
    shuffle_columns: bool = False
    extra_columns: tuple[str, ...] = ()
    """Columns the schema does not know, inserted at seeded positions."""
    drop_columns: tuple[str, ...] = ()
    """Schema columns left out of the file, e.g. ``("severity",)`` as before Nov 2023."""
    non_ascii: bool = False
    """Use values such as the city ``MÜNCHEN`` and the banner ``café``."""
    embedded_newlines: bool = False
    """Put quoted line breaks into one text column of some rows."""
    bom: bool = False


@dataclass(frozen=True, slots=True)
class Malformations:
    """Malformed rows written into generated files; each replaces a well-formed row at a seeded position.

    ``count`` (when > 0) is the number of malformed rows per report, else ``rate`` × rows rounded. Kinds
    are assigned round-robin among those that apply to the report type (``invalid_ip`` needs a subject IP
    column, the ASN kinds a subject ASN column).
    """

    rate: float = 0.0
    count: int = 0
    kinds: tuple[str, ...] = MALFORMATIONS
    types: frozenset[str] | None = None
    """Report types to corrupt; ``None`` means all generated types."""
    huge_size: int = 200_000
    """Characters in a ``huge_field`` value."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.kinds) - set(MALFORMATIONS))
        if unknown:
            raise ValueError(f"unknown malformation kind(s): {', '.join(unknown)}")

    @property
    def active(self) -> bool:
        return (self.rate > 0 or self.count > 0) and bool(self.kinds)


@dataclass(frozen=True, slots=True)
class LateReport:
    """A ``-delayed`` file for an old date that is listed only from ``available_at`` (simulated time) on."""

    type: str = "scan_ssl"
    days_ago: int = 3
    """Report date relative to the simulator's initial today."""
    available_at: datetime | None = None
    """Default: 06:00 UTC on the day after the initial today."""


@dataclass(frozen=True, slots=True)
class Republish:
    """A second file with the name of an existing one and a new id, listed from ``available_at`` on."""

    type: str = "scan_ssl"
    days_ago: int = 1
    available_at: datetime | None = None
    """Default: 06:00 UTC on the day after the initial today."""
    extra_rows: int = 0
    """0 republishes identical bytes; otherwise the new file has this many more (different) rows."""


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything that decides the inventory and the bytes of the files."""

    keys: tuple[ApiKey, ...] = (ApiKey(),)
    types: tuple[str, ...] = DEFAULT_TYPES
    days: int = 3
    """Reports exist for ``today0 - days + 1`` … the current simulated today (initial today = today0)."""
    rows: int | Mapping[str, int] = DEFAULT_ROWS
    """Rows per report, or per type with an optional ``"*"`` default."""
    variants: tuple[str, ...] = ("geo",)
    seed: int = 0
    today: date | None = None
    """Simulated UTC today; ``None`` follows the real clock (unless ``clock`` is given)."""
    clock: Callable[[], datetime] | None = None
    """Simulated UTC now; overrides ``today``."""
    scope: Scope = field(default_factory=Scope)
    style: CsvStyle = field(default_factory=CsvStyle)
    malformed: Malformations = field(default_factory=Malformations)
    unknown_types: tuple[str, ...] = ()
    """Listed types that are not in the catalog, e.g. ``("scan_futureproto",)``."""
    late: tuple[LateReport, ...] = ()
    republish: tuple[Republish, ...] = ()
    reports_dir: Path | None = None
    """Serve the ``YYYY-MM-DD-<type>-<rest>.csv`` files of this directory instead of generating."""
    legacy_download: bool = False
    """Answer the retired ``reports/download`` method instead of 404."""

    def rows_for(self, report_type: str) -> int:
        """Rows of a generated report of ``report_type``."""
        if isinstance(self.rows, int):
            return self.rows
        return int(self.rows.get(report_type, self.rows.get("*", DEFAULT_ROWS)))

    def subscriptions(self) -> tuple[str, ...]:
        """All subscription names of all keys, in first-seen order."""
        names: dict[str, None] = {}
        for key in self.keys:
            names.update(dict.fromkeys(key.subscriptions))
        return tuple(names)
