"""Who owns an event: the rule, as a structure the parse worker applies to every row before the COPY.

The rule (docs/constituents.md, "Matching"): the organisations of the **most specific network** that
contains the event's ``ip``; if no network contains it, those of its ``asn``; failing both, those of the
**longest domain** that is its ``hostname`` or a parent of it. An event belongs to every organisation
that registered the winning entry (an ISP that lists its customer's /24 next to the customer gets the
customer's events too), never to the holder of a wider block that a more specific one splits off. At one
entry, manual organisations override RIPE-imported ones.

:class:`Matcher` is plain data (dicts of ints and strings), so it pickles to the parse worker, which
keeps it between files: it is rebuilt (:func:`matcher_for`) and sent again only when the constituents'
version token changes. The networks are flattened into disjoint address ranges, each holding the owners of
the innermost network that covers it, so an address costs one binary search (``bisect``, in C) however
many networks there are and however they nest.

The value handed to the loader is the COPY text of ``ss_events.org_ids``, ``{3,7}`` (ascending ids), or
``\\N`` for an event no organisation owns: :meth:`Matcher.copy_value`.
"""

from __future__ import annotations

import ipaddress
import threading
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from socket import AF_INET6, inet_aton, inet_pton
from typing import Any

import psycopg

from ingestor.constituents import QUERIES

NULL = "\\N"


def _array_text(org_ids: Iterable[int]) -> str:
    return "{" + ",".join(str(i) for i in sorted(set(org_ids))) + "}"


@dataclass(frozen=True)
class Ranges:
    """Disjoint address ranges, each with the owners of the most specific network covering it (sorted)."""

    starts: list[int] = field(default_factory=list[int])
    ends: list[int] = field(default_factory=list[int])
    owners: list[str] = field(default_factory=list[str])

    @classmethod
    def flatten(cls, networks: list[tuple[int, int, str]]) -> Ranges:
        """From (first, last address, owners) of CIDRs, which nest or are disjoint (never overlap partly):
        a sweep that gives every address the owners of the innermost network containing it."""
        ranges = cls()
        stack: list[tuple[int, str]] = []  # (last address, owners) of the networks open at the cursor
        cursor = 0

        def emit(first: int, last: int, owners: str) -> None:
            if first > last:
                return
            if ranges.ends and ranges.ends[-1] == first - 1 and ranges.owners[-1] == owners:
                ranges.ends[-1] = last  # adjacent, same owners: one range
                return
            ranges.starts.append(first)
            ranges.ends.append(last)
            ranges.owners.append(owners)

        for first, last, owners in sorted(networks, key=lambda n: (n[0], -n[1])):
            while stack and stack[-1][0] < first:
                closing, closing_owners = stack.pop()
                emit(cursor, closing, closing_owners)
                cursor = closing + 1
            if stack:
                emit(cursor, first - 1, stack[-1][1])
            cursor = first
            stack.append((last, owners))
        while stack:
            closing, closing_owners = stack.pop()
            emit(cursor, closing, closing_owners)
            cursor = closing + 1
        return ranges

    def find(self, address: int) -> str | None:
        """The owners of the range holding ``address``: one binary search (C), whatever the number of networks."""
        i = bisect_right(self.starts, address) - 1
        if i >= 0 and address <= self.ends[i]:
            return self.owners[i]
        return None


@dataclass(frozen=True)
class Matcher:
    """The constituents' networks, prepared for per-row lookups. Build with :meth:`build`."""

    token: str
    v4: Ranges = field(default_factory=Ranges)
    v6: Ranges = field(default_factory=Ranges)
    asns: dict[int, str] = field(default_factory=dict[int, str])
    domains: dict[str, str] = field(default_factory=dict[str, str])
    networks: int = 0

    @classmethod
    def build(cls, token: str, rows: Iterable[tuple[int, Any, int | None, str | None, bool]]) -> Matcher:
        """From ``(org_id, cidr, asn, domain, manual)`` rows (``matcher_networks``)."""
        by_key: dict[tuple[Any, ...], tuple[set[int], set[int]]] = {}  # (manual, imported) owners
        count = 0
        for org_id, cidr, asn, domain, manual in rows:
            count += 1
            if cidr is not None:
                network = (
                    cidr
                    if isinstance(cidr, ipaddress.IPv4Network | ipaddress.IPv6Network)
                    else (ipaddress.ip_network(cidr))
                )
                first = int(network.network_address)
                key: tuple[Any, ...] = ("ip", network.version, first, first + network.num_addresses - 1)
            elif asn is not None:
                key = ("asn", int(asn))
            else:
                key = ("domain", str(domain))
            owners = by_key.get(key)
            if owners is None:
                owners = by_key[key] = (set(), set())
            owners[0 if manual else 1].add(int(org_id))
        v4: list[tuple[int, int, str]] = []
        v6: list[tuple[int, int, str]] = []
        asns: dict[int, str] = {}
        domains: dict[str, str] = {}
        for key, owners in by_key.items():
            text = _array_text(owners[0] or owners[1])  # manual entries override imported ones
            if key[0] == "ip":
                (v4 if key[1] == 4 else v6).append((key[2], key[3], text))
            elif key[0] == "asn":
                asns[key[1]] = text
            else:
                domains[key[1]] = text
        return cls(token, Ranges.flatten(v4), Ranges.flatten(v6), asns, domains, count)

    def _by_hostname(self, hostname: str) -> str | None:
        name = hostname.rstrip(".")
        while name:
            hit = self.domains.get(name)
            if hit is not None:
                return hit
            dot = name.find(".")
            if dot < 0:
                return None
            name = name[dot + 1 :]
        return None

    def copy_value(self, ip: str | None, asn: int | None, hostname: str | None) -> str:
        """``org_ids`` of an event in COPY text format: ``{3,7}``, or ``\\N`` when nobody owns it."""
        if ip is not None and (self.v4.starts or self.v6.starts):  # inlined: this runs for every row loaded
            text = ip.partition("/")[0]
            try:
                if ":" in text:
                    ranges, address = self.v6, int.from_bytes(inet_pton(AF_INET6, text), "big")
                else:
                    ranges, address = self.v4, int.from_bytes(inet_aton(text), "big")
            except OSError:
                ranges, address = None, 0
            if ranges is not None:
                i = bisect_right(ranges.starts, address) - 1
                if i >= 0 and address <= ranges.ends[i]:
                    return ranges.owners[i]
        if asn is not None and self.asns:
            hit = self.asns.get(asn)
            if hit is not None:
                return hit
        if hostname and self.domains:
            hit = self._by_hostname(hostname)
            if hit is not None:
                return hit
        return NULL

    def org_ids(self, ip: str | None, asn: int | None, hostname: str | None) -> list[int] | None:
        """The same as :meth:`copy_value`, as a list of ids (None when nobody owns the event)."""
        text = self.copy_value(ip, asn, hostname)
        return None if text == NULL else [int(i) for i in text[1:-1].split(",")]


_cache: dict[str, Matcher] = {}
_build_lock = threading.Lock()


def matcher_for(conn: psycopg.Connection[Any]) -> Matcher | None:
    """The matcher of the constituents as this transaction sees them; None when there are no networks.

    Cached per version token (new with every change, unique across databases), so a loader builds it
    once per change, not once per file.
    """
    row = conn.execute(QUERIES["org_token"]).fetchone()
    if row is None:
        return None
    current = str(row[0])
    with _build_lock:  # loading threads that meet a new version at once build it once
        cached = _cache.get(current)
        if cached is None:
            rows = conn.execute(QUERIES["matcher_networks"]).fetchall()
            current = str(rows[0][0]) if rows else current
            cached = Matcher.build(current, (row[1:] for row in rows if row[1] is not None))
            if len(_cache) >= 4:
                _cache.clear()
            _cache[current] = cached
    return cached if cached.networks else None
