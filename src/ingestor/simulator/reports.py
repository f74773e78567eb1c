"""The report inventory: which files exist, their ids, names, dates and ground truth.

Generated mode: for every date from ``today0 - days + 1`` up to the current simulated today, every
subscription, type and variant there is one report, built on first use and then kept, so that ids stay
stable as the clock advances. Extra reports (late ``-delayed`` files, republished files, reports published
at runtime) are added on top. Reports-dir mode lists the CSV files of a directory instead.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import re
import string
import threading
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from ingestor.catalog import Catalog, ReportType, family_of, subject_from_columns
from ingestor.simulator.config import CsvStyle, Malformations, Scope, SimulatorConfig
from ingestor.simulator.generate import ReportRenderer

FILE_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})-([^-]+)-(.+)\.csv$")
ID_ALPHABET = string.ascii_letters + string.digits
ID_LENGTH = 50
GENERIC_URL = "https://www.shadowserver.org/what-we-do/network-reporting/"
TEMPLATES = {"scan": "scan_http", "event": "event4_sinkhole", "other": "blocklist"}
"""Column templates of synthesised (not-in-catalog) report types, by family."""


def make_id(*parts: object) -> str:
    """A stable 50-character alphanumeric id derived from ``parts``."""
    number = int.from_bytes(hashlib.sha512("\x1f".join(map(str, parts)).encode()).digest(), "big")
    chars: list[str] = []
    for _ in range(ID_LENGTH):
        number, digit = divmod(number, len(ID_ALPHABET))
        chars.append(ID_ALPHABET[digit])
    return "".join(chars)


def derive_seed(*parts: object) -> int:
    """A 64-bit generation seed derived from ``parts``."""
    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:8], "big")


def synthesize_type(name: str, catalog: Catalog) -> ReportType:
    """A plausible entry for a type the catalog lacks (e.g. ``scan_futureproto``): its family's template
    columns plus two type-specific ones."""
    family = family_of(name)
    token = name.split("_", 1)[-1]
    fields = (*catalog.types[TEMPLATES[family]].fields, f"{token}_version", f"{token}_banner")
    return ReportType(
        type=name,
        name=token.replace("_", "-").title(),
        family=family,
        fields=fields,
        subject=subject_from_columns(fields),
        default_severity="medium",
        url=f"{GENERIC_URL}{token.replace('_', '-')}-report/",
        known=False,
    )


def start_of(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


@dataclass(eq=False)
class Report:
    """One listed file. Generated reports know their ground truth before they are rendered."""

    id: str
    type: str
    subscription: str
    date: date
    file: str
    rtype: ReportType
    available_at: datetime
    rows: int = 0
    seed: int = 0
    scope: Scope = field(default_factory=Scope)
    style: CsvStyle = field(default_factory=CsvStyle)
    malformed: Malformations = field(default_factory=Malformations)
    source: Path | None = None
    """The served file in reports-dir mode."""
    _renderer: ReportRenderer | None = field(default=None, init=False, repr=False)
    _counted: int | None = field(default=None, init=False, repr=False)

    def renderer(self) -> ReportRenderer:
        if self._renderer is None:
            self._renderer = ReportRenderer(
                self.rtype,
                day=self.date,
                rows=self.rows,
                seed=self.seed,
                scope=self.scope,
                style=self.style,
                malformed=self.malformed,
            )
        return self._renderer

    @property
    def known(self) -> bool:
        """Whether the ingestor's catalog knows the type."""
        return self.rtype.known

    @property
    def row_count(self) -> int:
        """Data records in the file (malformed rows included)."""
        if self.source is None:
            return self.rows
        if self._counted is None:
            self._counted = count_records(self.source)
        return self._counted

    @property
    def injected(self) -> dict[str, int]:
        """Malformed rows per kind (empty for reports-dir files)."""
        return {} if self.source is not None else self.renderer().injected()

    @property
    def header(self) -> list[str]:
        """The file's column names in file order."""
        if self.source is None:
            return self.renderer().header
        return _first(read_records(self.source))

    def write(self, out: BinaryIO) -> None:
        """Write the file's bytes to ``out``."""
        if self.source is not None:
            with self.source.open("rb") as src:
                while block := src.read(1 << 20):
                    out.write(block)
        else:
            self.renderer().render(out)

    def as_item(self) -> dict[str, str]:
        """The ``reports/list`` item."""
        return {
            "id": self.id,
            "type": self.type,
            "file": self.file,
            "report": self.subscription,
            "timestamp": self.date.isoformat(),
            "url": self.rtype.url or GENERIC_URL,
        }


def read_records(path: Path) -> Generator[list[str], None, None]:
    """The file's non-blank CSV records, header first (non-UTF-8 bytes become lone surrogates)."""
    csv.field_size_limit(max(csv.field_size_limit(), 32 * 1024 * 1024))
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as text:
        yield from (row for row in csv.reader(text) if row)


def _first(records: Generator[list[str], None, None]) -> list[str]:
    nothing: list[str] = []
    try:
        return next(records, nothing)
    finally:
        records.close()


def count_records(path: Path) -> int:
    """Non-blank CSV records after the header."""
    return max(0, sum(1 for _ in read_records(path)) - 1)


class Inventory:
    """All reports of one simulator, created on demand and kept for its lifetime."""

    def __init__(self, config: SimulatorConfig, catalog: Catalog, today0: date) -> None:
        self.config = config
        self.catalog = catalog
        self.today0 = today0
        self.first_date = today0 - timedelta(days=max(config.days, 0) - 1)
        self._lock = threading.RLock()
        self._generated: dict[tuple[date, str, str, str], Report] = {}
        self._by_id: dict[str, Report] = {}
        self._extra: list[Report] = []
        self._published = 0
        self._types = {t: self.type_entry(t) for t in (*config.types, *config.unknown_types)}
        if config.reports_dir is not None:
            for path in sorted(config.reports_dir.iterdir()):
                self._add_file(path)
        else:
            self._add_late_and_republished()

    def type_entry(self, name: str) -> ReportType:
        """The catalog entry of ``name``, or a synthesised one for types the catalog lacks."""
        return self.catalog.types.get(name) or synthesize_type(name, self.catalog)

    def _new(self, day: date, sub: str, rtype: ReportType, variant: str, **changes: Any) -> Report:
        cfg = self.config
        report = Report(
            id=make_id(cfg.seed, day, sub, rtype.type, variant),
            type=rtype.type,
            subscription=sub,
            date=day,
            file=f"{day.isoformat()}-{rtype.type}-{sub}-{variant}.csv",
            rtype=rtype,
            available_at=start_of(day),
            rows=cfg.rows_for(rtype.type),
            seed=derive_seed(cfg.seed, day, sub, rtype.type, variant),
            scope=cfg.scope,
            style=cfg.style,
            malformed=cfg.malformed,
        )
        return dataclasses.replace(report, **changes) if changes else report

    def _add_late_and_republished(self) -> None:
        cfg = self.config
        subs = cfg.subscriptions()
        if not subs:
            return
        default_at = start_of(self.today0 + timedelta(days=1)) + timedelta(hours=6)
        for late in cfg.late:
            day = self.today0 - timedelta(days=late.days_ago)
            variant = f"{cfg.variants[0]}-delayed"
            self.add(
                self._new(
                    day, subs[0], self.type_entry(late.type), variant, available_at=late.available_at or default_at
                )
            )
        for n, again in enumerate(cfg.republish):
            day = self.today0 - timedelta(days=again.days_ago)
            original = self._new(day, subs[0], self.type_entry(again.type), cfg.variants[0])
            seed = original.seed if again.extra_rows == 0 else derive_seed(original.seed, "republished")
            self.add(
                dataclasses.replace(
                    original,
                    id=make_id(cfg.seed, original.file, "republished", n),
                    seed=seed,
                    rows=original.rows + again.extra_rows,
                    available_at=again.available_at or default_at,
                )
            )

    def _add_file(self, path: Path) -> None:
        match = FILE_NAME.match(path.name)
        if not match or not path.is_file():
            return
        day = date.fromisoformat(match.group(1))
        with path.open("rb") as content:
            digest = hashlib.file_digest(content, "sha256").hexdigest()
        subs = self.config.subscriptions() or ("example-org",)
        report = Report(
            id=make_id("file", path.name, digest),
            type=match.group(2),
            subscription=subs[0],
            date=day,
            file=path.name,
            rtype=self.type_entry(match.group(2)),
            available_at=start_of(day),
            source=path,
        )
        if not report.known:
            header = _first(read_records(path))
            report.rtype = dataclasses.replace(self.catalog.get(report.type, header), url=GENERIC_URL)
        self.add(report)

    def add(self, report: Report) -> Report:
        """Add a report (late, republished or published at runtime)."""
        with self._lock:
            self._extra.append(report)
            self._by_id[report.id] = report
        return report

    def publish(self, report_type: str, day: date, sub: str, variant: str, **overrides: Any) -> Report:
        """Create and add a new report with a fresh id (and the usual file name unless overridden)."""
        with self._lock:
            self._published += 1
            n = self._published
        overrides.setdefault("id", make_id(self.config.seed, day, sub, report_type, variant, "published", n))
        overrides.setdefault("seed", derive_seed(self.config.seed, day, sub, report_type, variant, n))
        return self.add(self._new(day, sub, self.type_entry(report_type), variant, **overrides))

    def _materialize(self, until: date) -> None:
        if self.config.reports_dir is not None:
            return
        day = self.first_date
        while day <= until:
            for sub in self.config.subscriptions():
                for rtype in self._types.values():
                    for variant in self.config.variants:
                        key = (day, sub, rtype.type, variant)
                        if key not in self._generated:
                            report = self._new(day, sub, rtype, variant)
                            self._generated[key] = report
                            self._by_id[report.id] = report
            day += timedelta(days=1)

    def between(self, start: date, end: date, today: date) -> list[Report]:
        """Reports dated ``start`` … ``end`` that exist by ``today`` (availability not yet checked)."""
        with self._lock:
            self._materialize(today)
            found = [r for r in self._generated.values() if start <= r.date <= end]
            found += [r for r in self._extra if start <= r.date <= end and r.date <= today]
        return sorted(found, key=lambda r: (r.date, r.type, r.file, r.id))

    def get(self, report_id: str, today: date) -> Report | None:
        """The report with ``report_id``, if it exists by ``today``."""
        with self._lock:
            self._materialize(today)
            return self._by_id.get(report_id)
