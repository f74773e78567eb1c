"""Plausible values per CSV column, chosen by column name: a table, not a branch per report type.

A column is resolved in this order: a network column of the subject side (the catalog's subject prefix:
``""``, ``src_``, ``dst_`` or ``http_referer_``) gets a value inside the subscriber's scope; the same
columns of any other prefix get a value outside it; then the exact-name table, the prefix table, the
suffix table, and a short generic string. Generators return ``str`` (quoted in the file), ``int`` or
``float`` (bare) or ``None`` (empty cell).
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ingestor.catalog import SEVERITIES, ReportType
from ingestor.simulator.config import Scope

Cell = str | int | float | None
Generator = Callable[["ColumnContext", random.Random], Cell]

SIDE_PREFIXES = ("http_referer_", "src_", "dst_", "")
SIDE_BASES = frozenset({"ip", "port", "asn", "geo", "region", "city", "hostname", "naics", "sector"})

UNIQUE_COLUMNS = ("email", "entity_name", "md5", "query", "url")
"""Without a subject IP, the first of these columns present gets a per-row unique value."""

TEXT_COLUMNS = ("banner", "response", "raw_response", "http", "body", "request", "detail", "sysdesc", "server")
"""Preferred columns for embedded line breaks and other text-level oddities."""

PORTS = {
    "ssl": 443,
    "http": 80,
    "https": 443,
    "ssh": 22,
    "telnet": 23,
    "ftp": 21,
    "rdp": 3389,
    "smb": 445,
    "snmp": 161,
    "ntp": 123,
    "dns": 53,
    "ssdp": 1900,
    "sip": 5060,
    "mysql": 3306,
    "postgres": 5432,
    "redis": 6379,
    "mongodb": 27017,
    "elasticsearch": 9200,
    "memcached": 11211,
    "vnc": 5900,
    "ldap": 389,
    "mssql": 1433,
    "smtp": 25,
    "imap": 143,
    "pop3": 110,
    "mqtt": 1883,
    "cwmp": 7547,
    "ipp": 631,
    "bgp": 179,
    "docker": 2375,
    "isakmp": 500,
    "stun": 3478,
    "coap": 5683,
    "tftp": 69,
    "netbios": 137,
    "portmapper": 111,
    "rsync": 873,
    "amqp": 5672,
    "activemq": 61616,
    "quic": 443,
}
UDP_TOKENS = frozenset(
    {
        "ntp",
        "dns",
        "snmp",
        "ssdp",
        "sip",
        "netbios",
        "tftp",
        "isakmp",
        "stun",
        "coap",
        "mdns",
        "chargen",
        "qotd",
        "portmapper",
        "quic",
        "ldap_udp",
        "rdpeudp",
        "xdmcp",
    }
)
FAMILY_HEADS = frozenset({"scan", "scan6", "event4", "event6", "population", "population6"})
COMMON_PORTS = (80, 443, 8080, 8443, 22, 23, 21, 25, 53, 123, 161, 445, 3389, 5060, 7547)

PLACES = (
    ("NL", "NOORD-HOLLAND", "AMSTERDAM"),
    ("NL", "ZUID-HOLLAND", "ROTTERDAM"),
    ("DE", "HESSEN", "FRANKFURT AM MAIN"),
    ("DE", "BERLIN", "BERLIN"),
    ("US", "NEW YORK", "SARATOGA SPRINGS"),
    ("US", "VIRGINIA", "ASHBURN"),
    ("AT", "WIEN", "VIENNA"),
    ("NO", "TROMS OG FINNMARK", "TROMVIK"),
    ("FR", "ILE-DE-FRANCE", "PARIS"),
)
NON_ASCII_PLACES = (
    ("DE", "BAYERN", "MÜNCHEN"),
    ("FR", "ÎLE-DE-FRANCE", "PARIS"),
    ("NO", "TRØNDELAG", "TRONDHEIM"),
    ("CZ", "JIHOMORAVSKÝ KRAJ", "BRNO"),
)
OTHER_PLACES = (
    ("CN", "BEIJING", "BEIJING"),
    ("RU", "MOSKVA", "MOSCOW"),
    ("US", "CALIFORNIA", "SAN JOSE"),
    ("BR", "SAO PAULO", "SAO PAULO"),
    ("GB", "ENGLAND", "LONDON"),
    ("SG", "SINGAPORE", "SINGAPORE"),
    ("IN", "MAHARASHTRA", "MUMBAI"),
    ("KR", "SEOUL", "SEOUL"),
    ("VN", "HA NOI", "HANOI"),
)
OTHER_GEOS = tuple(p[0] for p in OTHER_PLACES)
PLACE_FIELDS = {"geo": 0, "region": 1, "city": 2}
OTHER_ASNS = (13335, 15169, 16509, 4134, 4837, 12389, 3320, 8075, 4200000002, 4294967294, 2147483648)
OTHER_V4_FIRST = (45, 62, 77, 91, 103, 146, 185, 193, 212)
NAICS = (517311, 518210, 611310, 921190, 522110, 541512, None, None)
SECTORS = (
    "Communications, Service Provider, and Hosting Service",
    "Education, Research, and Learning",
    "Government, Public Administration",
    "Finance, Banking, and Insurance",
    "Manufacturing",
    None,
)
SUBSCRIBER_DOMAINS = ("Example.NET", "example.org", "Mail.Example.com", "dsl.EXAMPLE.net")
OTHER_DOMAINS = ("Sinkhole.Shadowserver.org", "honeypot.Example-Research.net", "cdn.Provider.COM", "vps-42.Hoster.io")
MALWARE = ("andromeda", "mirai", "necurs", "conficker", "emotet", "qakbot", "avalanche-gozi", "ramnit")
VENDORS = (
    ("Fortinet", "firewall", "FortiGate", "7.0.12"),
    ("MikroTik", "router", "RouterOS", "6.49.8"),
    ("Hikvision", "camera", "DS-2CD2", "5.5.0"),
    ("Cisco", "router", "ISR 4321", "16.9.4"),
    ("Synology", "nas", "DS918+", "7.1"),
    ("Ubiquiti", "access point", "UAP-AC-Pro", "4.3.28"),
)
SERVERS = (
    "Apache/2.4.41 (Ubuntu)",
    "nginx",
    "nginx/1.18.0",
    "Microsoft-IIS/10.0",
    "lighttpd/1.4.59",
    "Boa/0.94.14rc21",
    "micro_httpd",
)
CIPHERS = (
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_AES_256_GCM_SHA384",
)
TAG_EXTRAS = (
    "vpn",
    "cve-2024-3400",
    "cve-2021-26855",
    "eol",
    "weak-cipher",
    "ssl-poodle",
    "ssl-freak",
    "default-credentials",
    "CVE-2024-38063",
)
WORDS = (
    "enabled",
    "disabled",
    "default",
    "public",
    "standard",
    "unknown",
    "v2",
    "ok",
    "open",
    "none",
    "generic",
    "legacy",
    "primary",
    "x86_64",
)
ORGS = (
    "Example Networks B.V.",
    "Example, Inc.",
    "Let's Encrypt",
    "DigiCert Inc",
    "Acme Hosting GmbH",
    "Sectigo Limited",
    None,
)
CAS = ("R3", "E1", "DigiCert TLS RSA SHA256 2020 CA1", "Sectigo RSA Domain Validation Secure Server CA", "localhost")


@dataclass(frozen=True, slots=True)
class ColumnContext:
    """What value generators may know about the report being generated."""

    report_type: str
    token: str
    ipv6: bool
    scope: Scope
    subject_prefix: str | None
    default_severity: str | None
    tag_separator: str = ";"
    non_ascii: bool = False

    @classmethod
    def for_type(cls, rtype: ReportType, scope: Scope, tag_separator: str, non_ascii: bool) -> ColumnContext:
        """Build the context of a catalog (or synthesised) report type."""
        head = rtype.type.partition("_")[0]
        ipv6 = head.endswith("6") or rtype.type.endswith("6")
        rest = rtype.type.removeprefix(head + "_") if head in FAMILY_HEADS else rtype.type
        if rtype.subject.ip:
            prefix: str | None = rtype.subject.ip[: -len("ip")]
        elif rtype.subject.geo:
            prefix = rtype.subject.geo[: -len("geo")]
        else:
            prefix = None
        token = rest.rstrip("6") or rtype.type
        return cls(rtype.type, token, ipv6, scope, prefix, rtype.default_severity, tag_separator, non_ascii)

    @property
    def port(self) -> int:
        for part in (self.token, *self.token.split("_")):
            if part in PORTS:
                return PORTS[part]
        return 80

    @property
    def protocol(self) -> str:
        return "udp" if self.token in UDP_TOKENS or self.token.split("_")[0] in UDP_TOKENS else "tcp"

    def places(self) -> Sequence[tuple[str, str, str]]:
        return PLACES + NON_ASCII_PLACES if self.non_ascii else PLACES

    def places_for(self, prefix: str) -> Sequence[tuple[str, str, str]]:
        """(geo, region, city) triples of one side: the subscriber's countries or the rest of the world."""
        if prefix != self.subject_prefix:
            return OTHER_PLACES
        inside = [p for p in self.places() if p[0] in self.scope.geo]
        if self.non_ascii:
            inside = [p for p in inside if p in NON_ASCII_PLACES] + inside
        return inside or [(g, "", "") for g in self.scope.geo]


def place_field(column: str) -> tuple[str, int] | None:
    """``(side prefix, index in a place triple)`` for geo/region/city columns, which are drawn together."""
    for prefix in SIDE_PREFIXES:
        if column.startswith(prefix) and column[len(prefix) :] in PLACE_FIELDS:
            return prefix, PLACE_FIELDS[column[len(prefix) :]]
    return None


def _hex(rng: random.Random, nbytes: int) -> str:
    return rng.getrandbits(nbytes * 8).to_bytes(nbytes, "big").hex()


def _colon_hex(rng: random.Random, nbytes: int) -> str:
    return ":".join(f"{b:02X}" for b in rng.getrandbits(nbytes * 8).to_bytes(nbytes, "big"))


def _mixed_case(rng: random.Random, text: str) -> str:
    return "".join(c.upper() if rng.random() < 0.3 else c for c in text)


def other_ip(ctx: ColumnContext, rng: random.Random) -> str:
    """An address outside the subscriber's scope (sinkholes, honeypots, attackers)."""
    if ctx.ipv6:
        return str(ipaddress.IPv6Address((0x2A01 << 112) | rng.getrandbits(100)))
    return f"{rng.choice(OTHER_V4_FIRST)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def subject_ips(ctx: ColumnContext, rng: random.Random, limit: int = 4096) -> list[str]:
    """Subject addresses inside the scope, in a seeded order (IPv4: every host, IPv6: ``limit`` samples)."""
    if ctx.ipv6:
        nets6 = [ipaddress.IPv6Network(n) for n in ctx.scope.ipv6]
        found: dict[str, None] = {}
        while len(found) < limit:
            net = rng.choice(nets6)
            host_bits = net.max_prefixlen - net.prefixlen
            found[str(net.network_address + rng.getrandbits(host_bits))] = None
        return list(found)
    hosts = (str(h) for n in ctx.scope.ipv4 for h in ipaddress.IPv4Network(n).hosts())
    ips = list(itertools.islice(hosts, max(limit, 1 << 16)))
    rng.shuffle(ips)
    return ips


def _subscriber_host(rng: random.Random) -> str:
    name = _mixed_case(rng, rng.choice(("host", "mail", "vpn", "cpe")))
    return f"{name}-{rng.randrange(1000)}.{rng.choice(SUBSCRIBER_DOMAINS)}"


def unique_value(column: str, index: int, seed: int) -> str:
    """A per-row unique value for the row-key column of reports without a subject IP."""
    digest = hashlib.md5(f"{seed}:{index}".encode(), usedforsecurity=False).hexdigest()
    if column == "email":
        return f"user.{digest[:6]}{index}@{SUBSCRIBER_DOMAINS[index % 4].lower()}"
    if column == "entity_name":
        return f"Example Holding {index} {digest[:4].upper()}"
    if column in ("url", "query"):
        return f"{'http://' if column == 'url' else ''}{digest[:10]}.example.com"
    return digest


def _side(column: str, ctx: ColumnContext) -> Generator | None:
    for prefix in SIDE_PREFIXES:
        if column.startswith(prefix) and column[len(prefix) :] in SIDE_BASES:
            base = column[len(prefix) :]
            table = _SUBJECT if prefix == ctx.subject_prefix else _OTHER
            return table[base]
    return None


_SUBJECT: dict[str, Generator] = {
    "ip": lambda c, r: subject_ips(c, r, 1)[0],
    "port": lambda c, r: c.port if r.random() < 0.8 else r.choice(COMMON_PORTS),
    "asn": lambda c, r: r.choice(c.scope.asns),
    "geo": lambda c, r: r.choice(c.scope.geo),
    "region": lambda c, r: r.choice(c.places())[1],
    "city": lambda c, r: r.choice(c.places())[2],
    "hostname": lambda c, r: None if r.random() < 0.2 else _subscriber_host(r),
    "naics": lambda c, r: r.choice(NAICS),
    "sector": lambda c, r: r.choice(SECTORS),
}
_OTHER: dict[str, Generator] = {
    **_SUBJECT,
    "ip": other_ip,
    "port": lambda c, r: r.choice(COMMON_PORTS) if r.random() < 0.5 else r.randrange(1024, 65536),
    "asn": lambda c, r: r.choice(OTHER_ASNS),
    "geo": lambda c, r: r.choice(OTHER_GEOS),
    "hostname": lambda c, r: None if r.random() < 0.3 else r.choice(OTHER_DOMAINS),
}


def _severity(ctx: ColumnContext, rng: random.Random) -> str:
    if ctx.default_severity and rng.random() < 0.9:
        return ctx.default_severity
    return rng.choice(SEVERITIES)


def _tag(ctx: ColumnContext, rng: random.Random) -> str | None:
    roll = rng.random()
    if roll < 0.1:
        return None
    tokens = [ctx.token.split("_")[0]]
    if roll > 0.5:
        tokens += rng.sample(TAG_EXTRAS, 1 + (roll > 0.85))
    return ctx.tag_separator.join(tokens)


def _text(ctx: ColumnContext, rng: random.Random) -> str:
    words: list[str] = rng.sample(WORDS, 3)
    if ctx.non_ascii and rng.random() < 0.3:
        words.append("café")
    return " ".join(words)


def _banner(ctx: ColumnContext, rng: random.Random) -> str:
    text = f"{rng.choice(SERVERS)} ready | {rng.choice(WORDS)} mode"
    return text + " (café)" if ctx.non_ascii and rng.random() < 0.3 else text


def _when(rng: random.Random) -> tuple[int, int, int, int, int, int]:
    return (
        rng.randrange(2019, 2027),
        rng.randrange(1, 13),
        rng.randrange(1, 29),
        rng.randrange(24),
        rng.randrange(60),
        rng.randrange(60),
    )


def _cert_date(ctx: ColumnContext, rng: random.Random) -> str:
    return "{:04d}-{:02d}-{:02d} {:02d}:{:02d}:{:02d}".format(*_when(rng))


def _iso_time(ctx: ColumnContext, rng: random.Random) -> str:
    return "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.".format(*_when(rng)) + f"{rng.randrange(10**6):06d}Z"


def _http_date(ctx: ColumnContext, rng: random.Random) -> str:
    y, mo, d, h, mi, s = _when(rng)
    month = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")[mo - 1]
    weekday = rng.choice(("Mon", "Tue", "Wed", "Thu", "Fri"))
    return f"{weekday}, {d:02d} {month} {y} {h:02d}:{mi:02d}:{s:02d} GMT"


def _fingerprint(column: str) -> Generator:
    size = 64 if "sha512" in column else 32 if "sha256" in column else 20 if "sha1" in column else 16
    return lambda c, r: _colon_hex(r, size)


def _digest(size: int) -> Generator:
    return lambda c, r: _hex(r, size)


def _pick(*values: Cell) -> Generator:
    return lambda c, r: r.choice(values)


def _yes_no(ctx: ColumnContext, rng: random.Random) -> str:
    return "Y" if rng.random() < 0.3 else "N"


def _small_int(ctx: ColumnContext, rng: random.Random) -> int:
    return rng.randrange(0, 5000)


def _url(ctx: ColumnContext, rng: random.Random) -> str:
    return f"http://{rng.choice(OTHER_DOMAINS).lower()}/{rng.choice(WORDS)}/{_hex(rng, 3)}.php"


def _email(ctx: ColumnContext, rng: random.Random) -> str:
    return f"{rng.choice(WORDS)}.{rng.randrange(100)}@{rng.choice(SUBSCRIBER_DOMAINS).lower()}"


def _org(ctx: ColumnContext, rng: random.Random) -> str | None:
    if ctx.non_ascii and rng.random() < 0.2:
        return "Müller Systemhaus GmbH"
    return rng.choice(ORGS)


def _maybe(gen: Generator, empty: float) -> Generator:
    return lambda c, r: None if r.random() < empty else gen(c, r)


def _common_name(ctx: ColumnContext, rng: random.Random) -> str:
    return f"{rng.choice(('www', 'mail', 'vpn', '*'))}.{rng.choice(SUBSCRIBER_DOMAINS)}"


EXACT: dict[str, Generator] = {
    "severity": _severity,
    "tag": _tag,
    "protocol": lambda c, r: c.protocol if r.random() < 0.95 else r.choice(("tcp", "udp")),
    "hostname_source": _pick("ptr", "certificate", None),
    "family": _pick(*MALWARE),
    "infection": _pick(*MALWARE),
    "public_source": _pick("SISSDEN", "CISA", "MSFT-DCU", "GOVCERT-LU", None),
    "application": _pick("http", "https", "dns", "smb", "telnet", None),
    "version": _pick("1.0", "2.4.41", "HTTP/1.1", "3", None),
    "event_id": lambda c, r: _hex(r, 8),
    "device_vendor": lambda c, r: r.choice(VENDORS)[0] if r.random() < 0.7 else None,
    "device_type": lambda c, r: r.choice(VENDORS)[1] if r.random() < 0.7 else None,
    "device_model": lambda c, r: r.choice(VENDORS)[2] if r.random() < 0.7 else None,
    "device_version": lambda c, r: r.choice(VENDORS)[3] if r.random() < 0.5 else None,
    "http_code": _pick(200, 200, 301, 302, 401, 403, 404),
    "http_reason": _pick("OK", "OK", "Moved Permanently", "Found", "Unauthorized", "Forbidden", "Not Found"),
    "content_type": _pick("text/html", "text/html; charset=utf-8", "application/json", None),
    "server": _pick(*SERVERS),
    "server_type": _pick(*SERVERS),
    "http_date": _http_date,
    "cipher_suite": _pick(*CIPHERS),
    "ssl_cipher": _pick(*CIPHERS),
    "handshake": _pick("TLSv1.2", "TLSv1.3", "TLSv1.0"),
    "ssl_version": _pick("TLSv1.2", "TLSv1.3", "TLSv1.0", "SSLv3"),
    "signature_algorithm": _pick("sha256WithRSAEncryption", "ecdsa-with-SHA256", "sha1WithRSAEncryption"),
    "key_algorithm": _pick("rsaEncryption", "id-ecPublicKey"),
    "cert_length": _pick(2048, 4096, 256, 1024),
    "cert_serial_number": lambda c, r: _hex(r, 16).upper(),
    "subject_common_name": _common_name,
    "issuer_common_name": _pick(*CAS),
    "validation_level": _pick("DV", "OV", "EV", None),
    "browser_error": _pick(None, None, "self signed certificate", "certificate has expired"),
    "jarm": lambda c, r: _hex(r, 31),
    "hassh": lambda c, r: _hex(r, 16),
    "email": _email,
    "banner": _banner,
    "http": _pick("HTTP/1.1", "HTTP/1.0"),
    "connection": _pick("keep-alive", "close", None),
    "http_connection": _pick("keep-alive", "close", None),
    "transfer_encoding": _pick("chunked", None, None),
    "set_cookie": _pick(None, None, "PHPSESSID=abc123; path=/", "session=deadbeef; HttpOnly; Secure"),
    "www_authenticate": _pick(None, None, 'Basic realm="router"', 'Digest realm="admin", qop="auth"'),
    "method": _pick("GET", "POST"),
    "http_method": _pick("GET", "POST"),
    "user_agent": _pick("Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "curl/7.68.0", "python-requests/2.31"),
    "http_agent": _pick("Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "curl/7.68.0", "python-requests/2.31"),
    "query_type": _pick("A", "AAAA", "TXT", "MX"),
    "request_type": _pick("A", "AAAA", "TXT", "MX"),
    "query": lambda c, r: f"{_hex(r, 5)}.{r.choice(OTHER_DOMAINS).lower()}",
    "count": lambda c, r: r.randrange(1, 500),
    "status": _pick("active", "open", "new", None),
    "source": _pick("spamhaus", "blocklist.de", "abuse.ch", "Shadowserver"),
    "reason": _pick("Spam source", "Brute force", "Malware C2", "Scanning"),
    "entity_name": _pick("Example Logistics Ltd", "Acme Hosting GmbH", "Example, Inc."),
    "website": lambda c, r: r.choice(SUBSCRIBER_DOMAINS).lower(),
    "ransomware": _pick("lockbit3", "akira", "play", "blackbasta"),
    "amplification": lambda c, r: round(r.uniform(1.5, 500.0), 2),
    "response_size": lambda c, r: r.randrange(40, 4000),
    "content_length": lambda c, r: r.choice((None, r.randrange(100, 20000))),
    "mac_address": lambda c, r: _colon_hex(r, 6),
    "machine_name": lambda c, r: f"DESKTOP-{_hex(r, 3).upper()}",
    "username": _pick("admin", "root", "jdoe", "service"),
    "service": _pick("imap", "owa", "vpn", "sso"),
    "sysdesc": _pick("Linux router 4.14.0", "Cisco IOS Software, C2960 Software", "RouterOS CCR1036"),
    "duration": lambda c, r: r.randrange(1, 3600),
    "uptime": lambda c, r: r.randrange(60, 10**7),
    "date_published": _cert_date,
    "http_referer": _url,
    "dst_network": lambda c, r: f"{other_ip(c, r).rsplit('.', 1)[0]}.0/24" if not c.ipv6 else None,
    "dst_netmask": _pick(24, 32),
}

PREFIXES: tuple[tuple[str, Generator], ...] = (
    ("client_", _yes_no),
    ("is_", _yes_no),
    ("ip_header_", lambda c, r: r.randrange(0, 256)),
    ("printer_", _text),
)

SUFFIXES: tuple[tuple[str, Generator], ...] = (
    ("_fingerprint", lambda c, r: ""),  # replaced by _fingerprint(column) in generator_for
    ("md5", _digest(16)),
    ("sha1", _digest(20)),
    ("sha256", _digest(32)),
    ("sha512", _digest(64)),
    ("_ipv6", lambda c, r: str(ipaddress.IPv6Address((0x2A01 << 112) | r.getrandbits(100)))),
    ("_ip", other_ip),
    ("_ipv4", other_ip),
    ("_gateway", other_ip),
    ("_port", lambda c, r: r.randrange(1024, 65536)),
    ("_asn", lambda c, r: r.choice(OTHER_ASNS)),
    ("_country", lambda c, r: r.choice(OTHER_GEOS + c.scope.geo)),
    ("_state_or_province_name", lambda c, r: None if r.random() < 0.5 else r.choice(c.places())[1].title()),
    ("_locality_name", lambda c, r: None if r.random() < 0.5 else r.choice(c.places())[2].title()),
    ("_organization_name", _org),
    ("_organization_unit_name", _pick(None, None, "IT", "Domain Control Validated")),
    ("_email_address", _maybe(_email, 0.7)),
    ("_surname", _pick(None)),
    ("_given_name", _pick(None)),
    ("_postal_code", _maybe(lambda c, r: f"{r.randrange(10000, 99999)}", 0.8)),
    ("_street_address", _pick(None)),
    ("_address", other_ip),
    ("_business_category", _pick(None, None, "Private Organization")),
    ("_serial_number", _maybe(lambda c, r: _hex(r, 8).upper(), 0.8)),
    ("_naics", lambda c, r: r.choice(NAICS)),
    ("_sector", lambda c, r: r.choice(SECTORS)),
    ("_hostname", lambda c, r: r.choice(OTHER_DOMAINS)),
    ("_host", lambda c, r: r.choice(SUBSCRIBER_DOMAINS)),
    ("_servername", _common_name),
    ("_date", _cert_date),
    ("_time", _iso_time),
    ("_url", _url),
    ("_code", lambda c, r: r.randrange(0, 600)),
    ("_length", _small_int),
    ("_size", _small_int),
    ("_count", _small_int),
    ("_number", _small_int),
    ("_version", _pick("1.0", "2.1.3", "7.4.0", "10.0.19041", None)),
    ("_support", _yes_no),
    ("_supported", _yes_no),
    ("_vulnerable", _yes_no),
    ("_valid", _yes_no),
    ("_expired", _yes_no),
    ("_trusted", _yes_no),
    ("_signed", _yes_no),
    ("_access", _yes_no),
    ("_poodle", _yes_no),
    ("_cipher", _pick(*CIPHERS)),
    ("_name", lambda c, r: _mixed_case(r, f"{r.choice(WORDS)}-{r.randrange(100)}")),
    ("_raw", _maybe(_banner, 0.3)),
    ("_response", _maybe(_banner, 0.3)),
)


def generator_for(column: str, ctx: ColumnContext) -> Generator:
    """The value generator of ``column`` in a report of ``ctx``'s type."""
    side = _side(column, ctx)
    if side is not None:
        return side
    if column in EXACT:
        return EXACT[column]
    for prefix, gen in PREFIXES:
        if column.startswith(prefix):
            return gen
    if column.endswith("_fingerprint"):
        return _fingerprint(column)
    for suffix, gen in SUFFIXES:
        if column == suffix.lstrip("_") or column.endswith(suffix):
            return gen
    if column in TEXT_COLUMNS or column.endswith(("banner", "response", "_info")):
        return _banner
    return _maybe(_text, 0.2)
