"""A scripted history of report files, and what the finding lifecycle must make of it.

:func:`standard_history` writes weeks of daily files of a few report types whose subjects get fixed,
come back, flap for a day or two, appear late; one type comes in delta mode (full on Sundays, otherwise
only what is new since Sunday's report), one type's files carry two variants per day (``-asn`` and ``-geo``,
mostly the same rows), one type stops arriving, one gains a column and one loses one. :meth:`History.expected`
runs the lifecycle rules day by day over the files' contents (a model written independently of the SQL
that implements them), so tests and ``bench/picture.py`` can check the database against it.

The files are ``YYYY-MM-DD-<type>-history-<variant>.csv``: ``import DIR`` loads them, and ``simulate
--reports-dir DIR`` serves them.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from ingestor.catalog import load_catalog

SUNDAY = 7


@dataclass(frozen=True)
class Subject:
    """A host of the subscriber's network, and the days a report type sees it."""

    ip: str
    port: int
    asn: int
    geo: str
    severity: str
    days: frozenset[date]


@dataclass
class TypeHistory:
    """One report type's subjects and the days its files were delivered."""

    report_type: str
    subjects: list[Subject]
    delivered: list[date]
    delta: bool = False
    variants: tuple[str, ...] = ("geo",)
    added_column: tuple[str, date] | None = None
    removed_column: tuple[str, date] | None = None

    @property
    def event_report(self) -> bool:
        return self.report_type.startswith(("event4_", "event6_"))

    def key(self, subject: Subject) -> str:
        """The finding key ss_finding_key() gives the subject's rows."""
        return subject.ip if self.event_report else f"{subject.ip}|{subject.port}"

    @property
    def file_days(self) -> list[date]:
        """The days a file of the type exists: delivered days with something to list (a delta day with
        nothing new since Sunday has no file, as Shadowserver sends none for an empty report)."""
        return [day for day in self.delivered if self.in_file(day)]

    def is_delta_day(self, day: date) -> bool:
        return self.delta and day.isoweekday() != SUNDAY

    def in_file(self, day: date) -> list[Subject]:
        """The subjects the day's file lists: all present ones, or on a delta day those not in the last
        Sunday's report (a delta lists what changed; a host that went away is not a row)."""
        present = [s for s in self.subjects if day in s.days]
        if not self.is_delta_day(day):
            return present
        sunday = day - timedelta(days=day.isoweekday() % SUNDAY)
        if sunday not in self.delivered:
            return present
        return [s for s in present if sunday not in s.days]


@dataclass(frozen=True)
class Expected:
    """What the lifecycle makes of one finding."""

    report_type: str
    finding_key: str
    first_seen: date
    last_seen: date
    state: str
    resolved_at: date | None
    reopen_count: int
    transitions: tuple[tuple[str, date], ...]
    subject: Subject


@dataclass
class History:
    """Report files of several types over consecutive days."""

    start: date
    days: int
    types: list[TypeHistory] = field(default_factory=list[TypeHistory])

    @property
    def end(self) -> date:
        return self.start + timedelta(days=self.days - 1)

    def files(self) -> Iterator[tuple[str, bytes]]:
        """``(file name, CSV bytes)`` of every delivered file, by day then type."""
        catalog = load_catalog()
        for offset in range(self.days):
            day = self.start + timedelta(days=offset)
            for history in self.types:
                if day not in history.delivered or not history.in_file(day):
                    continue
                for number, variant in enumerate(history.variants):
                    name = f"{day.isoformat()}-{history.report_type}-history-{variant}.csv"
                    yield name, _csv(history, catalog.get(history.report_type).fields, day, number)

    def write(self, directory: Path) -> list[Path]:
        """Write every file into ``directory``; return their paths."""
        directory.mkdir(parents=True, exist_ok=True)
        paths: list[Path] = []
        for name, data in self.files():
            path = directory / name
            path.write_bytes(data)
            paths.append(path)
        return paths

    def expected(
        self, resolve_after: int = 3, by_type: dict[str, int] | None = None
    ) -> dict[tuple[str, str], Expected]:
        """The lifecycle of every finding, by (report type, finding key), computed day by day."""
        found: dict[tuple[str, str], Expected] = {}
        for history in self.types:
            needed = (by_type or {}).get(history.report_type, resolve_after)
            listed = {day: {s.ip for s in history.in_file(day)} for day in history.file_days}
            for subject in history.subjects:
                expected = _replay(history, subject, needed, listed)
                if expected is not None:
                    found[(history.report_type, expected.finding_key)] = expected
        return found


def _replay(history: TypeHistory, subject: Subject, needed: int, listed: dict[date, set[str]]) -> Expected | None:
    seen = sorted(day for day in listed if subject.ip in listed[day])
    if not seen:
        return None
    state, absent, reopens = "open", 0, 0
    resolved_at: date | None = None
    transitions: list[tuple[str, date]] = [("new", seen[0])]
    for day in sorted(d for d in listed if d > seen[0]):
        if day in seen:
            if state == "resolved":
                state, resolved_at, reopens = "open", None, reopens + 1
                transitions.append(("reopened", day))
            absent = 0
        elif not history.is_delta_day(day) and state == "open":
            absent += 1
            if absent == needed:
                state, resolved_at = "resolved", day
                transitions.append(("resolved", day))
    return Expected(
        history.report_type,
        history.key(subject),
        seen[0],
        seen[-1],
        state,
        resolved_at,
        reopens,
        tuple(transitions),
        subject,
    )


def _csv(history: TypeHistory, fields: tuple[str, ...], day: date, variant: int) -> bytes:
    columns = list(fields)
    if history.added_column and day >= history.added_column[1]:
        columns.append(history.added_column[0])
    if history.removed_column and day >= history.removed_column[1] and history.removed_column[0] in columns:
        columns.remove(history.removed_column[0])
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for number, subject in enumerate(history.in_file(day)):
        if variant and number % 4 == 3:
            continue  # the second variant lacks some rows ...
        second = 1 if variant and number % 4 == 2 else 0  # ... and reports some a second later
        stamp = f"{day.isoformat()} {number // 60 % 24:02d}:{number % 60:02d}:{second:02d}Z"
        if history.event_report:
            row = {
                "timestamp": stamp,
                "protocol": "tcp",
                "src_ip": subject.ip,
                "src_port": str(40000 + (number * 7 + day.toordinal()) % 20000),
                "src_asn": str(subject.asn),
                "src_geo": subject.geo,
                "severity": subject.severity,
                "dst_ip": "203.0.113.10",
                "dst_port": "80",
                "infection": "andromeda",
            }
        else:
            row = {
                "timestamp": stamp,
                "severity": subject.severity,
                "ip": subject.ip,
                "protocol": "tcp",
                "port": str(subject.port),
                "asn": str(subject.asn),
                "geo": subject.geo,
                "tag": history.report_type.removeprefix("scan_"),
            }
        if history.added_column and history.added_column[0] in columns:
            row[history.added_column[0]] = "yes"
        writer.writerow(row)
    return out.getvalue().encode("utf-8")


ASNS = ((64500, "AT"), (64501, "AT"), (64502, "DE"), (64503, "CH"))


def _subjects(
    rng: random.Random, network: str, count: int, port: int, severity: str, days: list[date]
) -> list[Subject]:
    """Hosts with the fates a real feed shows: always there, fixed for good, fixed then back, absent a day
    or two (a scan that missed them), first seen late."""
    hosts = ipaddress.ip_network(network).hosts()
    subjects: list[Subject] = []
    last = len(days)

    def pick(low: int, high: int) -> int:  # a short history (two weeks) leaves some ranges empty: take low
        return rng.randrange(low, max(low + 1, high))

    for number in range(count):
        ip = str(next(hosts))
        asn, geo = ASNS[number % len(ASNS)]
        fate = number % 6
        present: set[int]
        if fate == 0:  # always there
            present = set(range(last))
        elif fate == 1:  # fixed for good
            present = set(range(pick(0, last // 2)))
        elif fate == 2:  # fixed, back after a while
            gone = pick(5, last // 2)
            back = gone + rng.randrange(8, 14)
            present = set(range(gone)) | set(range(back, last))
        elif fate == 3:  # absent a day or two now and then
            present = {d for d in range(last) if d % 9 not in (4, 5) or number % 2}
            present -= {d for d in range(last) if d % 13 == 6}
        elif fate == 4:  # first seen late, then fixed
            first = pick(last // 3, last - 10)
            present = set(range(first, first + rng.randrange(4, 9)))
        else:  # first seen late, still there
            present = set(range(rng.randrange(last // 3, last), last))
        subjects.append(
            Subject(ip, port, asn, geo, severity if number % 5 else "critical", frozenset(days[d] for d in present))
        )
    return subjects


def standard_history(start: date, days: int = 60, *, seed: int = 14, scale: int = 1) -> History:
    """The scripted history of the module docstring, ``days`` days from ``start``.

    scan_rdp (high; two days without a file; a new column from two thirds on), scan_ssl (delta mode;
    loses a column near the end), event4_sinkhole (two variants per day), scan_telnet (stops arriving two
    days before the end). ``scale`` multiplies the subjects.
    """
    rng = random.Random(seed)
    every = [start + timedelta(days=offset) for offset in range(days)]
    gaps = {every[days // 3], every[days // 3 + 1]}
    history = History(start, days)
    history.types.append(
        TypeHistory(
            "scan_rdp",
            _subjects(rng, "10.1.0.0/16", 36 * scale, 3389, "high", every),
            [d for d in every if d not in gaps],
            added_column=("rdp_security_layer", every[2 * days // 3]),
        )
    )
    history.types.append(
        TypeHistory(
            "scan_ssl",
            _subjects(rng, "10.2.0.0/16", 24 * scale, 443, "medium", every),
            every,
            delta=True,
            removed_column=("naics", every[-5]),
        )
    )
    history.types.append(
        TypeHistory(
            "event4_sinkhole",
            _subjects(rng, "10.3.0.0/16", 18 * scale, 0, "critical", every),
            every,
            variants=("asn", "geo"),
        )
    )
    history.types.append(
        TypeHistory("scan_telnet", _subjects(rng, "10.4.0.0/16", 12 * scale, 23, "medium", every), every[:-2])
    )
    return history
