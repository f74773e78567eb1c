"""An organisation as the import files and the RIPE import describe it, validated value by value.

Every parser raises ``ValueError`` with a message for the operator; the importers prefix it with the file
and line. Networks are normalised (``192.0.2.7/24`` is refused, not silently widened: a typo in a
constituent's network sends its events elsewhere), ASNs are integers, domains lowercase without a trailing
dot, e-mail addresses checked for the shape ``local@domain.tld``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_ASN = 4_294_967_295
MODES = ("new", "all")
FORMATS = ("html", "text")
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)(\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)*$"
)
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
_TAG = re.compile(r"^[^\s,;]{1,64}$")


def parse_cidr(value: str) -> Network:
    """An IPv4/IPv6 network in CIDR form, or a single address (a /32 or /128); host bits are an error."""
    text = value.strip()
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        if "has host bits set" in str(exc):
            wide = ipaddress.ip_network(text, strict=False)
            raise ValueError(f"{text!r} has host bits set (did you mean {wide}?)") from None
        raise ValueError(f"not an IP network in CIDR form: {text!r}") from None


def parse_asn(value: str | int) -> int:
    """``64500`` or ``AS64500``: 1 to 4294967295."""
    text = str(value).strip().upper().removeprefix("AS")
    if not text.isdigit() or not 1 <= int(text) <= MAX_ASN:
        raise ValueError(f"not an AS number (1 to {MAX_ASN}, optionally written AS64500): {value!r}")
    return int(text)


def parse_domain(value: str) -> str:
    """A domain name: lowercase, no trailing dot, no wildcard (a domain covers every name below it)."""
    text = value.strip().lower().rstrip(".").removeprefix("*.")
    if not _DOMAIN.match(text) or ("." not in text and text != "localhost"):
        raise ValueError(f"not a domain name: {value!r}")
    return text


def parse_email(value: str) -> str:
    text = value.strip()
    if len(text) > 254 or not _EMAIL.match(text):
        raise ValueError(f"not an e-mail address: {value!r}")
    return text


def parse_network_value(value: str) -> Network | int | str:
    """One entry of a ``networks`` list: a CIDR (or address), an ASN (``AS64500``), or a domain."""
    text = value.strip()
    if re.fullmatch(r"(?i)as\d+", text):
        return parse_asn(text)
    if ":" in text or re.fullmatch(r"[\d./]+", text):
        return parse_cidr(text)
    try:
        return parse_domain(text)
    except ValueError:
        raise ValueError(f"not a CIDR network, an AS number (AS64500) or a domain: {value!r}") from None


@dataclass
class OrgInput:
    """One organisation to store; ``source`` is ``manual`` (import files) or ``ripe``."""

    name: str
    emails: list[str] = field(default_factory=list)
    cidrs: list[Network] = field(default_factory=list)
    asns: list[int] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    language: str | None = None
    handle: str | None = None
    country: str | None = None
    source: str = "manual"
    notify_enabled: bool = True
    notify_interval_hours: int = 24
    notify_types: list[str] | None = None
    notify_min_severity: str | None = None
    notify_mode: str = "new"
    notify_format: str = "html"

    def dedupe(self) -> None:
        """Drop repeated values, keeping the first occurrence's order."""
        self.emails = list(dict.fromkeys(self.emails))
        self.cidrs = list(dict.fromkeys(self.cidrs))
        self.asns = list(dict.fromkeys(self.asns))
        self.domains = list(dict.fromkeys(self.domains))
        self.tags = list(dict.fromkeys(self.tags))


def parse_name(value: str) -> str:
    text = " ".join(value.split())
    if not text or len(text) > 200:
        raise ValueError(f"an organisation needs a name of 1 to 200 characters: {value!r}")
    return text


def parse_language(value: str) -> str:
    text = value.strip()
    if not _LANGUAGE.match(text):
        raise ValueError(f"not a language code (en, de, pt-BR): {value!r}")
    return text


def parse_tag(value: str) -> str:
    text = value.strip()
    if not _TAG.match(text):
        raise ValueError(f"not a tag (up to 64 characters, no spaces, commas or semicolons): {value!r}")
    return text


def parse_interval(value: str | int) -> int:
    """Hours between two digests: ``24``, ``24h``, ``7d``; 1 hour to 366 days."""
    text = str(value).strip().lower()
    match = re.fullmatch(r"(\d{1,5})\s*([hd]?)", text)
    if not match:
        raise ValueError(f"not an interval (hours, or 24h, 7d): {value!r}")
    hours = int(match.group(1)) * (24 if match.group(2) == "d" else 1)
    if not 1 <= hours <= 8784:
        raise ValueError(f"interval out of range (1 hour to 366 days): {value!r}")
    return hours


def parse_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    text = value.strip().lower()
    if text not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}: {value!r}")
    return text


def parse_bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a yes/no value: {value!r}")
