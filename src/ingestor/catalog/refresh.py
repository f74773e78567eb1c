"""Build the shipped catalog from Shadowserver's published ``reports.json``.

    python -m ingestor.catalog.refresh --from tests/data/schema/reports.json
    python -m ingestor.catalog.refresh --from https://interchange.shadowserver.org/schema/reports.json

Default severities are not part of ``reports.json``; they come from report_schema's ``types.md``
(2026-03) and are kept in :data:`DEFAULT_SEVERITY` below. A type missing from that table keeps the
severity of the previous catalog, or none.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from ingestor.catalog import Catalog, ReportType, family_of, load_catalog, subject_from_columns


def _expand(spec: str) -> list[str]:
    """Expand types.md shorthand: ``scan(6)_bgp`` -> scan_bgp, scan6_bgp; ``event(4|6)_x`` -> both."""
    names: list[str] = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        if "(4|6)" in item:
            names += [item.replace("(4|6)", "4"), item.replace("(4|6)", "6")]
        elif "(6)" in item:
            names += [item.replace("(6)", ""), item.replace("(6)", "6")]
        else:
            names.append(item)
    return names


_TYPES_MD = {
    "critical": """compromised_account, compromised_iot(6), compromised_website(6),
        event4_honeypot_brute_force, event4_honeypot_ddos, event4_honeypot_ics_scan, event4_microsoft_sinkhole,
        event4_microsoft_sinkhole_http, event(4|6)_sinkhole, event(4|6)_sinkhole_http,
        event(4|6)_sinkhole_http_referer, malware_url, scan_adb, scan_cisco_smart_install, scan_docker,
        scan(6)_exchange, scan(6)_http_vulnerable, scan_netis_router, scan(6)_smtp_vulnerable, scan_synfulknock""",
    "high": """event4_ddos_participant, event4_honeypot_adb_scan, event4_honeypot_darknet,
        event4_honeypot_http_scan, event4_honeypot_ikev2_scan, event4_honeypot_rdp_scan,
        event4_honeypot_rocketmq_scan, event4_honeypot_smb_scan, scan_afp, scan_ard, scan(6)_badsecrets,
        scan(6)_bgp, scan_couchdb, scan_db2, scan_dvr_dhcpdiscover, scan(6)_elasticsearch, scan_epmd,
        scan_hadoop, scan_ics, scan_ipmi, scan(6)_ipp, scan_kubernetes, scan(6)_ldap_tcp, scan_ldap_udp,
        scan_loop_dos, scan_memcached, scan(6)_mongodb, scan(6)_mqtt_anon, scan(6)_msrpc, scan_mssql,
        scan(6)_mysql, scan_nat_pmp, scan_netbios, scan_post_exploitation_framework, scan(6)_postgres,
        scan_radmin, scan(6)_rdp, scan_rdpeudp, scan_redis, scan_sip, scan(6)_slp, scan(6)_smb, scan(6)_snmp,
        scan_ssdp, scan_ubiquiti, scan(6)_vnc, scan_xdmcp""",
    "medium": """event4_ip_spoofer, population(6)_bgp, population(6)_msmq, scan(6)_activemq, scan_amqp,
        scan_chargen, scan_coap, scan(6)_cwmp, scan_ddos_middlebox, scan(6)_dns, scan(6)_http_proxy,
        scan(6)_imap_vulnerable, scan(6)_ip_tunnel, scan(6)_isakmp, scan_mdns, scan(6)_mqtt, scan(6)_ntp,
        scan(6)_ntpmonitor, scan(6)_pop3_vulnerable, scan_portmapper, scan_qotd, scan(6)_rsync, scan_socks,
        scan(6)_stun, scan(6)_telnet, scan_ws_discovery""",
    "low": """blocklist, population(6)_http_proxy, sandbox_conn, sandbox_url, scan_gtp, scan(6)_imap,
        scan(6)_pop3, scan(6)_ssl_freak, scan(6)_ssl_poodle, spam_url""",
    "info": """device_id(6), event4_honeypot_ddos_amp, event4_honeypot_ddos_target, event4_sinkhole_dns,
        population(6)_isakmp, population_ntrip, ransomware_victim, scan(6)_ftp, scan(6)_http, scan_quic,
        scan(6)_smtp, scan(6)_ssh, scan(6)_ssl, scan_tftp""",
}

DEFAULT_SEVERITY: dict[str, str] = {name: level for level, spec in _TYPES_MD.items() for name in _expand(spec)}
"""Default severity by report type (report_schema types.md, 2026-03)."""


NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    "compromised_account": ("email",),
    "ransomware_victim": ("entity_name",),
    "sandbox_dns": ("md5", "request"),
}
"""What identifies a finding in the report types without a subject IP (see ``ss_findings``)."""


def read_source(source: str) -> bytes:
    """Read ``reports.json`` from a file path or an http(s) URL."""
    if source.startswith(("http://", "https://")):
        response = httpx.get(source, timeout=60.0, follow_redirects=True)
        response.raise_for_status()
        return response.content
    return Path(source).read_bytes()


def build_catalog(reports: dict[str, Any], previous: Catalog | None = None, origin: str = "") -> Catalog:
    """Build a catalog from the parsed ``reports.json`` object."""
    types: dict[str, ReportType] = {}
    for name, entry in sorted(reports.items()):
        fields = tuple(entry.get("fields") or ())
        old = previous.types.get(name) if previous else None
        types[name] = ReportType(
            type=name,
            name=str(entry.get("name") or name),
            family=family_of(name),
            fields=fields,
            subject=subject_from_columns(fields),
            default_severity=DEFAULT_SEVERITY.get(name, old.default_severity if old else None),
            url=entry.get("url"),
            taxonomy=entry.get("classification.taxonomy"),
            classification_type=entry.get("classification.type"),
            natural_key=NATURAL_KEYS.get(name, old.natural_key if old else ()),
        )
    source = {"origin": origin, "generated_at": datetime.now(UTC).replace(microsecond=0).isoformat()}
    return Catalog(types=types, source=source)


def write_catalog(catalog: Catalog, path: Path) -> None:
    """Write the catalog atomically."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(catalog.to_dict(), indent=1, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def refresh(source: str, target: Path) -> tuple[Catalog, list[str], list[str]]:
    """Rebuild ``target`` from ``source``; return the catalog and the added and removed type names."""
    raw = read_source(source)
    data = json.loads(raw)
    if not isinstance(data, dict) or not data or not all(isinstance(v, dict) and "fields" in v for v in data.values()):
        raise ValueError("not a Shadowserver reports.json: expected an object of report types with 'fields'")
    previous = load_catalog(target) if target.exists() else None
    origin = f"{Path(source).name if '://' not in source else source} sha256:{hashlib.sha256(raw).hexdigest()[:16]}"
    catalog = build_catalog(data, previous, origin)
    old = set(previous.types) if previous else set()
    write_catalog(catalog, target)
    return catalog, sorted(set(catalog.types) - old), sorted(old - set(catalog.types))


def shipped_catalog_path() -> Path:
    return Path(__file__).with_name("catalog.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source", required=True, help="reports.json path or URL")
    parser.add_argument("--to", dest="target", type=Path, default=shipped_catalog_path())
    args = parser.parse_args(argv)
    catalog, added, removed = refresh(args.source, args.target)
    print(f"{len(catalog)} report types written to {args.target}; added {added or 'none'}; removed {removed or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
