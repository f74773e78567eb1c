"""Organisations from the RIPE database's bulk split files, as RIPE publishes them.

``ripe.db.organisation``, ``ripe.db.role``, ``ripe.db.inetnum``, ``ripe.db.inet6num`` and
``ripe.db.aut-num``, plain or ``.gz`` (read as a stream: the inetnum file is gigabytes). The RPSL text
format: objects separated by blank lines, ``attribute: value`` lines, continuation lines starting with a
space, a tab or ``+``, comments (lines starting with ``%`` or ``#``, and the rest of a value after ``#``).

What becomes of them: an organisation (``organisation:`` handle, ``org-name:``) gets the address blocks
(an ``inetnum`` range becomes the CIDRs that cover it exactly) and ASNs whose ``org:`` names it, and the
``abuse-mailbox:`` of its ``abuse-c:`` role (else those of its networks' ``abuse-c:``). A network without
``org:`` belongs to its ``abuse-c:`` role, which then stands for the organisation. Filters: ``countries``
keeps the blocks of those ``country:`` codes (and the ASNs of the organisations they belong to);
``handles`` keeps the objects of those organisations. An organisation without any abuse mailbox cannot
be notified and is left out (counted).
"""

from __future__ import annotations

import gzip
import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ingestor.constituents.model import MAX_ASN, Network, OrgInput, parse_email

CLASSES = ("organisation", "role", "inetnum", "inet6num", "aut-num")
_ORDER = {name: position for position, name in enumerate(CLASSES)}


def _open(path: Path) -> IO[str]:
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="")
    return path.open("r", encoding="utf-8", errors="replace", newline="")


def iter_objects(stream: Iterable[str]) -> Iterator[list[tuple[str, str]]]:
    """RPSL objects as lists of (attribute, value), comments removed, continuation lines joined."""
    current: list[tuple[str, str]] = []
    for raw in stream:
        line = raw.rstrip("\r\n")
        if not line.strip():
            if current:
                yield current
                current = []
            continue
        if line[0] in "%#":
            continue
        if line[0] in " \t+":
            if current:
                name, value = current[-1]
                more = _strip_comment(line[1:]).strip()
                current[-1] = (name, f"{value} {more}".strip() if more else value)
            continue
        name, colon, value = line.partition(":")
        if not colon:
            continue  # not an attribute line: dumps have none, but a stray line must not stop the import
        current.append((name.strip().lower(), _strip_comment(value).strip()))
    if current:
        yield current


def _strip_comment(value: str) -> str:
    return value.split("#", 1)[0]


def _first(obj: list[tuple[str, str]], name: str) -> str | None:
    for attribute, value in obj:
        if attribute == name and value:
            return value
    return None


def inetnum_cidrs(value: str) -> list[Network]:
    """``192.0.2.0 - 192.0.2.255`` as the CIDRs covering exactly that range (a CIDR is accepted too)."""
    if "-" in value:
        first, _, last = value.partition("-")
        start, end = ipaddress.ip_address(first.strip()), ipaddress.ip_address(last.strip())
        if isinstance(start, ipaddress.IPv4Address) and isinstance(end, ipaddress.IPv4Address) and start <= end:
            return list(ipaddress.summarize_address_range(start, end))
        if isinstance(start, ipaddress.IPv6Address) and isinstance(end, ipaddress.IPv6Address) and start <= end:
            return list(ipaddress.summarize_address_range(start, end))
        raise ValueError(f"not an address range: {value!r}")
    return [ipaddress.ip_network(value.strip(), strict=False)]


@dataclass
class RipeResult:
    orgs: list[OrgInput] = field(default_factory=list)
    objects: int = 0
    networks: int = 0
    without_mailbox: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Objects skipped because a value cannot be read (file:line-free: RPSL objects have no line here)."""


def class_of(path: Path) -> str:
    """The object class of a split file: from its name (``ripe.db.inetnum.gz``) or its first object."""
    name = path.name.lower().removesuffix(".gz")
    for candidate in sorted(CLASSES, key=len, reverse=True):
        if name.endswith("." + candidate) or name == candidate:
            return candidate
    with _open(path) as stream:
        for obj in iter_objects(stream):
            if obj[0][0] in CLASSES:
                return obj[0][0]
            break
    raise ValueError(f"{path.name}: not a RIPE split file of {', '.join(CLASSES)}")


@dataclass
class _Owner:
    handle: str
    name: str
    country: str | None = None
    abuse_c: str | None = None
    cidrs: list[Network] = field(default_factory=list)
    asns: list[int] = field(default_factory=list)
    network_abuse_c: list[str] = field(default_factory=list)


def read_ripe(paths: Iterable[Path], *, countries: Iterable[str] = (), handles: Iterable[str] = ()) -> RipeResult:
    """Organisations of the given split files (any order: organisations and roles are read first)."""
    wanted_countries = {c.upper() for c in countries}
    wanted_handles = {h.upper() for h in handles}
    files = sorted(((class_of(path), path) for path in paths), key=lambda item: _ORDER[item[0]])
    result = RipeResult()
    orgs: dict[str, _Owner] = {}
    mailboxes: dict[str, str] = {}
    role_names: dict[str, str] = {}
    selected: set[str] = set()
    asns_by_org: dict[str, list[int]] = {}
    for kind, path in files:
        with _open(path) as stream:
            for obj in iter_objects(stream):
                result.objects += 1
                cls, key = obj[0]
                if cls != kind:
                    continue
                try:
                    _take(
                        cls,
                        key,
                        obj,
                        orgs,
                        mailboxes,
                        role_names,
                        selected,
                        asns_by_org,
                        wanted_countries,
                        wanted_handles,
                        result,
                    )
                except ValueError as exc:
                    result.problems.append(f"{path.name}: {cls} {key}: {exc}")
    for handle, asns in asns_by_org.items():  # aut-num has no country: it follows its organisation
        if handle in selected or (not wanted_countries and not wanted_handles) or handle in wanted_handles:
            owner = orgs.get(handle)
            if owner is not None:
                owner.asns.extend(asns)
                selected.add(handle)
    _finish(orgs, selected, mailboxes, result)
    return result


def _take(
    cls: str,
    key: str,
    obj: list[tuple[str, str]],
    orgs: dict[str, _Owner],
    mailboxes: dict[str, str],
    role_names: dict[str, str],
    selected: set[str],
    asns_by_org: dict[str, list[int]],
    countries: set[str],
    handles: set[str],
    result: RipeResult,
) -> None:
    if cls == "organisation":
        handle = key.upper()
        if not handles or handle in handles:
            orgs[handle] = _Owner(
                handle,
                _first(obj, "org-name") or handle,
                _country(_first(obj, "country")),
                (_first(obj, "abuse-c") or "").upper() or None,
            )
        return
    if cls == "role":
        nic = (_first(obj, "nic-hdl") or "").upper()
        mailbox = _first(obj, "abuse-mailbox")
        if nic and mailbox:
            mailboxes[nic] = mailbox
            role_names[nic] = key
        return
    owner_handle = (_first(obj, "org") or "").upper()
    abuse_c = (_first(obj, "abuse-c") or "").upper()
    if cls == "aut-num":
        text = key.upper().removeprefix("AS")
        if not text.isdigit() or not 1 <= int(text) <= MAX_ASN:
            raise ValueError("not an AS number")
        if owner_handle:
            asns_by_org.setdefault(owner_handle, []).append(int(text))
        return
    country = _country(_first(obj, "country"))
    if countries and country not in countries:
        return
    if not owner_handle:
        if not abuse_c or handles:
            return
        owner_handle = abuse_c  # no organisation: its abuse contact's role stands for it
        if owner_handle not in orgs:
            orgs[owner_handle] = _Owner(owner_handle, role_names.get(abuse_c, abuse_c), country, abuse_c)
    if handles and owner_handle not in handles:
        return
    owner = orgs.get(owner_handle)
    if owner is None:
        raise ValueError(f"org {owner_handle} is not in the organisation file")
    cidrs = inetnum_cidrs(key)
    owner.cidrs.extend(cidrs)
    owner.country = owner.country or country
    if abuse_c:
        owner.network_abuse_c.append(abuse_c)
    result.networks += len(cidrs)
    selected.add(owner_handle)


def _country(value: str | None) -> str | None:
    text = (value or "").strip().upper()
    return text if len(text) == 2 and text.isalpha() else None


def _finish(orgs: dict[str, _Owner], selected: set[str], mailboxes: dict[str, str], result: RipeResult) -> None:
    names: dict[str, int] = {}
    chosen = [orgs[handle] for handle in sorted(selected) if handle in orgs]
    for owner in chosen:
        names[owner.name] = names.get(owner.name, 0) + 1
    for owner in chosen:
        roles = [owner.abuse_c] if owner.abuse_c in mailboxes else []
        roles = roles or list(dict.fromkeys(r for r in owner.network_abuse_c if r in mailboxes))
        emails: list[str] = []
        for role in roles:
            try:
                emails.append(parse_email(mailboxes[role]))
            except ValueError:
                continue
        if not emails:
            result.without_mailbox.append(owner.handle)
            continue
        name = owner.name if names[owner.name] == 1 else f"{owner.name} ({owner.handle})"
        org = OrgInput(
            name,
            emails=emails,
            cidrs=owner.cidrs,
            asns=owner.asns,
            handle=owner.handle,
            country=owner.country,
            source="ripe",
        )
        org.cidrs = list(ipaddress.collapse_addresses([c for c in org.cidrs if c.version == 4]))  # pyright: ignore[reportArgumentType]
        org.cidrs += list(ipaddress.collapse_addresses([c for c in owner.cidrs if c.version == 6]))  # pyright: ignore[reportArgumentType]
        org.dedupe()
        result.orgs.append(org)
