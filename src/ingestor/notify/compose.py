"""A digest's content and its MIME message.

One digest = one organisation (the rows are fetched for that organisation's id only: a digest can never
hold another one's data), grouped by report type. Per type: rows, distinct hosts, distinct findings,
severity counts, the type's description link from the catalog (``ReportType.url``, from Shadowserver's
``reports.json``) and one CSV attachment with the rows' original columns (the catalog's column order,
then any others). An attachment over ``NOTIFY_MAX_ATTACHMENT`` is zip-compressed (``NOTIFY_OVERSIZE=zip``)
and, if still too large (or with ``truncate``), cut to the rows that fit, which the bodies say.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import jinja2

from ingestor.catalog import SEVERITIES, Catalog

HOLD_FACTOR = 4
"""Rows are kept for an attachment up to this many times the size limit (the rest is counted only)."""
TEMPLATES = ("subject.txt", "body.txt", "body.html")


def human_size(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}".replace(".0 ", " ")
        size /= 1024  # type: ignore[assignment]
    return str(size)


@dataclass
class TypeDigest:
    """One report type of a digest."""

    type: str
    name: str | None = None
    url: str | None = None
    rows: int = 0
    hosts: set[str] = field(default_factory=set[str])
    findings: set[str] = field(default_factory=set[str])
    severities: Counter[str] = field(default_factory=Counter[str])
    kept: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    kept_bytes: int = 0
    attachment: str = ""
    zipped: bool = False
    truncated: bool = False
    rows_attached: int = 0

    def add(self, ip: str | None, severity: str | None, raw: dict[str, Any], finding: str, hold_bytes: int) -> None:
        self.rows += 1
        if ip:
            self.hosts.add(ip)
        self.findings.add(finding)
        self.severities[severity or "unknown"] += 1
        if self.kept_bytes <= hold_bytes:
            self.kept.append(raw)
            self.kept_bytes += sum(len(str(v)) + 1 for v in raw.values()) + 1

    def context(self) -> dict[str, Any]:
        order = {level: i for i, level in enumerate(SEVERITIES)}
        severities = dict(sorted(self.severities.items(), key=lambda item: order.get(item[0], 99)))
        return {
            "type": self.type,
            "name": self.name,
            "url": self.url,
            "rows": self.rows,
            "hosts": len(self.hosts),
            "findings": len(self.findings),
            "severities": severities,
            "attachment": self.attachment,
            "zipped": self.zipped,
            "truncated": self.truncated,
            "rows_attached": self.rows_attached,
        }


@dataclass
class Digest:
    """Everything one organisation's digest holds."""

    org_id: int
    org: dict[str, Any]
    types: dict[str, TypeDigest] = field(default_factory=dict[str, TypeDigest])
    file_ids: set[int] = field(default_factory=set[int])
    sent_findings: set[tuple[str, str]] = field(default_factory=set[tuple[str, str]])
    suppressed: int = 0
    window_start: date | None = None
    window_end: date | None = None

    @property
    def events(self) -> int:
        return sum(t.rows for t in self.types.values())

    @property
    def findings(self) -> int:
        return len(self.sent_findings)

    def note_date(self, day: date) -> None:
        self.window_start = min(self.window_start or day, day)
        self.window_end = max(self.window_end or day, day)


def _columns(rows: list[dict[str, Any]], published: tuple[str, ...]) -> list[str]:
    present: dict[str, None] = {}
    for row in rows:
        present.update(dict.fromkeys(row))
    present.pop("_extra_cells", None)
    first = [column for column in published if column in present]
    return first + sorted(set(present) - set(first))


def _csv_bytes(rows: list[dict[str, Any]], columns: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return out.getvalue().encode("utf-8")


def attachment_of(
    digest_type: TypeDigest, catalog: Catalog, limit: int, oversize: str, file_stem: str
) -> tuple[str, bytes, str]:
    """The type's attachment as (file name, bytes, MIME subtype), within ``limit`` bytes (see the module)."""
    report = catalog.types.get(digest_type.type)
    columns = _columns(digest_type.kept, report.fields if report else ())
    data = _csv_bytes(digest_type.kept, columns)
    digest_type.rows_attached = len(digest_type.kept)
    digest_type.truncated = len(digest_type.kept) < digest_type.rows
    name = f"{file_stem}-{digest_type.type}.csv"
    if len(data) <= limit:
        return name, data, "csv"
    if oversize == "zip":
        packed = _zip(name, data)
        if len(packed) <= limit:
            digest_type.zipped = True
            return name + ".zip", packed, "zip"
    low, high = 0, len(digest_type.kept)  # the most rows whose CSV fits
    while low < high:
        middle = (low + high + 1) // 2
        if len(_csv_bytes(digest_type.kept[:middle], columns)) <= limit:
            low = middle
        else:
            high = middle - 1
    digest_type.rows_attached = low
    digest_type.truncated = True
    return name, _csv_bytes(digest_type.kept[:low], columns), "csv"


def _zip(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # reproducible bytes for a retry's log
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, data)
    return out.getvalue()


class Templates:
    """The digest templates: NOTIFY_TEMPLATE_DIR's first, then the package's; ``<name>.<lang>.<ext>.j2``
    before ``<name>.<ext>.j2`` when the organisation has a language."""

    def __init__(self, directory: Path | None) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if directory is not None:
            loaders.append(jinja2.FileSystemLoader(str(directory)))
        loaders.append(jinja2.PackageLoader("ingestor.notify", "templates"))
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=lambda name: bool(name and name.endswith(".html.j2")),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )

    def render(self, name: str, language: str | None, context: dict[str, Any]) -> str:
        stem, ext = name.split(".")
        candidates = [f"{stem}.{language}.{ext}.j2"] if language else []
        candidates.append(f"{stem}.{ext}.j2")
        return self.env.select_template(candidates).render(context)


@dataclass(frozen=True)
class Envelope:
    """Who a message is from and to (the SMTP envelope may add the Bcc, never shown in the headers)."""

    sender: str
    to: list[str]
    reply_to: str | None
    bcc: str | None

    @property
    def recipients(self) -> list[str]:
        return [*self.to, *([self.bcc] if self.bcc else [])]


def build_message(
    digest: Digest,
    *,
    ticket: str,
    envelope: Envelope,
    catalog: Catalog,
    templates: Templates,
    limit: int,
    oversize: str,
) -> EmailMessage:
    """The digest as a MIME message: text (and HTML, unless the org asked for text) plus one attachment per type."""
    attachments = [
        attachment_of(t, catalog, limit, oversize, ticket) for t in sorted(digest.types.values(), key=lambda t: t.type)
    ]
    for digest_type in digest.types.values():
        report = catalog.types.get(digest_type.type)
        digest_type.name = report.name if report else None
        digest_type.url = report.url if report else None
    types = [t.context() for t in sorted(digest.types.values(), key=lambda t: t.type)]
    context = {
        "org": digest.org,
        "ticket": ticket,
        "types": types,
        "total_events": digest.events,
        "total_hosts": len(set[str]().union(*(t.hosts for t in digest.types.values()))),
        "findings": digest.findings,
        "suppressed": digest.suppressed,
        "window_start": digest.window_start,
        "window_end": digest.window_end,
        "limit": human_size(limit),
    }
    language = digest.org.get("language")
    message = EmailMessage()
    message["Subject"] = " ".join(templates.render("subject.txt", language, context).split())
    message["From"] = envelope.sender
    message["To"] = ", ".join(envelope.to)
    if envelope.reply_to:
        message["Reply-To"] = envelope.reply_to
    message["Date"] = formatdate(localtime=False, usegmt=True)
    domain = envelope.sender.rsplit("@", 1)[-1].strip("> ") or None
    message["Message-ID"] = make_msgid(idstring=ticket, domain=domain)
    message["X-Ticket"] = ticket
    message.set_content(templates.render("body.txt", language, context), subtype="plain", charset="utf-8")
    if digest.org.get("notify_format", "html") == "html":
        message.add_alternative(templates.render("body.html", language, context), subtype="html", charset="utf-8")
    for name, data, subtype in attachments:
        message.add_attachment(
            data, maintype="application" if subtype == "zip" else "text", subtype=subtype, filename=name
        )
    return message
