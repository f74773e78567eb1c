"""The constituents' tables: organisations replaced atomically, listed, shown, removed.

Every change happens in the caller's transaction, takes the ``ss_org_state`` row first (changes are
serialised) and gives the constituents a new version token, from which loaders know to rebuild their
matcher. Organisations are written in name order, so two writers lock rows in the same order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ingestor.constituents import QUERIES
from ingestor.constituents.files import ImportProblems
from ingestor.constituents.model import OrgInput


@dataclass
class ImportResult:
    """What an import changed."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """RIPE organisations left alone because a manual entry has the same name or handle."""
    replaced: list[str] = field(default_factory=list)
    """RIPE organisations a manual entry with their handle replaced."""
    networks: int = 0
    contacts: int = 0


def token(conn: psycopg.Connection[Any]) -> str:
    """The constituents' version token (changes with every import or removal)."""
    row = conn.execute(QUERIES["org_token"]).fetchone()
    return str(row[0]) if row else ""


def _params(org: OrgInput) -> dict[str, Any]:
    return {
        "name": org.name,
        "source": org.source,
        "handle": org.handle,
        "country": org.country,
        "language": org.language,
        "tags": org.tags,
        "notify_enabled": org.notify_enabled,
        "notify_interval_hours": org.notify_interval_hours,
        "notify_types": org.notify_types,
        "notify_min_severity": org.notify_min_severity,
        "notify_mode": org.notify_mode,
        "notify_format": org.notify_format,
    }


def replace_orgs(conn: psycopg.Connection[Any], orgs: Sequence[OrgInput], *, prune_ripe: bool = False) -> ImportResult:
    """Create or replace each organisation (by name) with its contacts and networks, in one transaction.

    A RIPE organisation (``source='ripe'``) never replaces a manual one of the same name or handle: manual
    entries override imported ones. With ``prune_ripe``, RIPE organisations this import no longer has are
    removed (a full re-import of the same scope).
    """
    result = ImportResult()
    with conn.transaction():
        conn.execute(QUERIES["lock_org_state"])
        contacts: list[tuple[int, str]] = []
        networks: list[tuple[int, str | None, int | None, str | None]] = []
        for org in sorted(orgs, key=lambda o: o.name):
            existing = conn.execute(QUERIES["org_by_name"], {"name": org.name}).fetchone()
            if org.source == "ripe":
                by_handle = conn.execute(QUERIES["org_by_handle"], {"handle": org.handle}).fetchone()
                if (existing and existing[1] == "manual") or (by_handle and by_handle[1] == "manual"):
                    result.skipped.append(org.name)
                    continue
                if by_handle and by_handle[2] != org.name:  # renamed in the RIPE database
                    conn.execute(QUERIES["delete_org"], {"name": by_handle[2]})
            elif org.handle:
                by_handle = conn.execute(QUERIES["org_by_handle"], {"handle": org.handle}).fetchone()
                if by_handle and by_handle[2] != org.name:
                    if by_handle[1] == "manual":
                        raise ImportProblems([f"{org.name}: handle {org.handle} belongs to {by_handle[2]!r} already"])
                    conn.execute(QUERIES["delete_org"], {"name": by_handle[2]})  # the manual entry replaces it
                    result.replaced.append(str(by_handle[2]))
            elif existing and existing[1] == "ripe" and existing[2]:
                org.handle = existing[2]  # a manual entry taking over a RIPE one keeps its handle
            row = conn.execute(QUERIES["upsert_org"], _params(org)).fetchone()
            assert row is not None
            org_id = int(row[0])
            (result.updated if existing else result.created).append(org.name)
            conn.execute(QUERIES["clear_org_contacts"], {"org_id": org_id})
            conn.execute(QUERIES["clear_org_networks"], {"org_id": org_id})
            contacts.extend((org_id, email) for email in org.emails)
            networks.extend((org_id, str(cidr), None, None) for cidr in org.cidrs)
            networks.extend((org_id, None, asn, None) for asn in org.asns)
            networks.extend((org_id, None, None, domain) for domain in org.domains)
        if prune_ripe:
            handles = [org.handle for org in orgs if org.source == "ripe" and org.handle]
            for _, name in conn.execute(QUERIES["ripe_orgs_not_in"], {"handles": handles}).fetchall():
                conn.execute(QUERIES["delete_org"], {"name": name})
                result.removed.append(str(name))
        with conn.cursor().copy(QUERIES["copy_org_contacts"]) as copy:
            for item in contacts:
                copy.write_row(item)
        with conn.cursor().copy(QUERIES["copy_org_networks"]) as copy:
            for network in networks:
                copy.write_row(network)
        result.contacts, result.networks = len(contacts), len(networks)
        conn.execute(QUERIES["bump_org_token"])
    return result


def remove_orgs(conn: psycopg.Connection[Any], names: Iterable[str]) -> list[str]:
    """Remove organisations by name (their contacts and networks go too); return the names not found.

    Their events keep the removed id in ``org_ids`` until ``orgs rematch``; digests ignore ids without an
    organisation.
    """
    missing: list[str] = []
    with conn.transaction():
        conn.execute(QUERIES["lock_org_state"])
        for name in sorted(set(names)):
            if conn.execute(QUERIES["delete_org"], {"name": name}).fetchone() is None:
                missing.append(name)
        conn.execute(QUERIES["bump_org_token"])
    return missing


def list_orgs(conn: psycopg.Connection[Any], tag: str | None = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(QUERIES["list_orgs"], {"tag": tag}).fetchall()


def org_detail(conn: psycopg.Connection[Any], name: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(QUERIES["org_detail"], {"name": name}).fetchone()


def org_id(conn: psycopg.Connection[Any], name: str) -> int | None:
    row = conn.execute(QUERIES["org_by_name"], {"name": name}).fetchone()
    return int(row[0]) if row else None


ORG_STATUS_COLUMNS = ("name", "events", "hosts", "last_digest", "failed_digests", "in_doubt")


def org_status(conn: psycopg.Connection[Any], *, since: date, limit: int = 1000) -> list[dict[str, Any]]:
    """Per organisation: events and distinct hosts of report dates from ``since``, last digest, failed and
    in-doubt digests; most events first."""
    rows = conn.execute(QUERIES["org_status"], {"since": since, "limit": limit}).fetchall()
    return [dict(zip(ORG_STATUS_COLUMNS, row, strict=True)) for row in rows]
