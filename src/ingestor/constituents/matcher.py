"""Who owns an event: the rule, as a structure the parse worker applies to every row before the COPY.

The rule (docs/constituents.md, "Matching"): the organisations of the **most specific network** that
contains the event's ``ip``; if no network contains it, those of its ``asn``; failing both, those of the
**longest domain** that is its ``hostname`` or a parent of it. An event belongs to every organisation
that registered the winning entry (an ISP that lists its customer's /24 next to the customer gets the
customer's events too), never to the holder of a wider block that a more specific one splits off. At one
entry, manual organisations override RIPE-imported ones.

:class:`Matcher` is plain data (dicts of ints and strings), so it pickles to the parse worker, which
keeps it between files: it is rebuilt (:func:`matcher_for`) and sent again only when the constituents'
version token changes. An IPv4 lookup costs one dict probe per distinct prefix length present (longest
first); results are memoised per address.

The value handed to the loader is the COPY text of ``ss_events.org_ids``, ``{3,7}`` (ascending ids), or
``\\N`` for an event no organisation owns: :meth:`Matcher.copy_value`.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from ingestor.constituents import QUERIES

NULL = "\\N"
MEMO_LIMIT = 200_000
"""Addresses whose result is memoised per process before the memo starts over."""


def _array_text(org_ids: Iterable[int]) -> str:
    return "{" + ",".join(str(i) for i in sorted(set(org_ids))) + "}"


@dataclass
class Matcher:
    """The constituents' networks, prepared for per-row lookups. Build with :meth:`build`."""

    token: str
    v4: tuple[tuple[int, dict[int, str]], ...] = ()
    """(shift, {address >> shift: org_ids text}) per prefix length present, most specific first."""
    v6: tuple[tuple[int, dict[int, str]], ...] = ()
    asns: dict[int, str] = field(default_factory=dict[int, str])
    domains: dict[str, str] = field(default_factory=dict[str, str])
    networks: int = 0
    _memo: dict[str, str] = field(default_factory=dict[str, str], repr=False, compare=False)

    @classmethod
    def build(cls, token: str, rows: Iterable[tuple[int, Any, int | None, str | None, bool]]) -> Matcher:
        """From ``(org_id, cidr, asn, domain, manual)`` rows (``matcher_networks``)."""
        by_key: dict[tuple[Any, ...], dict[bool, set[int]]] = defaultdict(lambda: {True: set[int](), False: set[int]()})
        count = 0
        for org_id, cidr, asn, domain, manual in rows:
            count += 1
            if cidr is not None:
                network = ipaddress.ip_network(cidr)
                key: tuple[Any, ...] = ("ip", network.version, network.prefixlen, int(network.network_address))
            elif asn is not None:
                key = ("asn", int(asn))
            else:
                key = ("domain", str(domain))
            by_key[key][bool(manual)].add(int(org_id))
        v4: dict[int, dict[int, str]] = defaultdict(dict)
        v6: dict[int, dict[int, str]] = defaultdict(dict)
        asns: dict[int, str] = {}
        domains: dict[str, str] = {}
        for key, owners in by_key.items():
            text = _array_text(owners[True] or owners[False])  # manual entries override imported ones
            if key[0] == "ip":
                _, version, prefixlen, address = key
                bits = 32 if version == 4 else 128
                (v4 if version == 4 else v6)[bits - prefixlen][address >> (bits - prefixlen)] = text
            elif key[0] == "asn":
                asns[key[1]] = text
            else:
                domains[key[1]] = text
        return cls(
            token,
            tuple(sorted(v4.items())),  # smallest shift = longest prefix first
            tuple(sorted(v6.items())),
            asns,
            domains,
            count,
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_memo"] = {}
        return state

    def _by_ip(self, ip: str) -> str | None:
        found = self._memo.get(ip)
        if found is not None:
            return found or None
        try:
            if ":" in ip:
                address, tables = int.from_bytes(socket.inet_pton(socket.AF_INET6, ip.split("/")[0]), "big"), self.v6
            else:
                address, tables = int.from_bytes(socket.inet_aton(ip.split("/")[0]), "big"), self.v4
        except OSError:
            return None
        result = ""
        for shift, table in tables:
            hit = table.get(address >> shift)
            if hit is not None:
                result = hit
                break
        if len(self._memo) >= MEMO_LIMIT:
            self._memo.clear()
        self._memo[ip] = result
        return result or None

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
        if ip is not None and (self.v4 or self.v6):
            hit = self._by_ip(ip)
            if hit is not None:
                return hit
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
_cache_lock = threading.Lock()


def matcher_for(conn: psycopg.Connection[Any]) -> Matcher | None:
    """The matcher of the constituents as this transaction sees them; None when there are no networks.

    Cached per version token (new with every change, unique across databases), so a loader builds it
    once per change, not once per file.
    """
    row = conn.execute(QUERIES["org_token"]).fetchone()
    if row is None:
        return None
    current = str(row[0])
    with _cache_lock:
        cached = _cache.get(current)
    if cached is None:
        cached = Matcher.build(current, conn.execute(QUERIES["matcher_networks"]).fetchall())
        with _cache_lock:
            if len(_cache) >= 4:
                _cache.clear()
            _cache[current] = cached
    return cached if cached.networks else None
