"""``notify``: prepare each due organisation's digest, record it, send it, record the outcome.

The delivery log ``ss_notifications`` holds one row per digest and its exact message:

1. **prepared** — in one transaction: the digest's row (ticket, Message-ID, recipients, window, counts,
   the message itself), the files it covers for the organisation (``ss_notification_files``: their
   events are in no later digest of that organisation) and its findings (``ss_notified_findings``: the
   suppression window). Committed before anything is sent.
2. the row's ``attempt_started_at`` is set and committed, then the message goes to the SMTP server;
3. **sent** (accepted) or **failed** (refused, timeout, 4xx, 5xx, unreachable: the error is kept and
   ``attempt_started_at`` cleared). A failed digest is sent again by the next run: the same bytes, the
   same Message-ID and ticket, so nothing is lost and nothing is rebuilt differently.

A crash between the server's acceptance and step 3's commit leaves a row ``prepared`` with
``attempt_started_at`` set: *in doubt*. It is never resent by itself (that could be a second copy);
every run reports it until the operator checks (the Bcc archive, the server's log, by Message-ID) and
says ``notify --mark-sent TICKET`` or ``notify --resend TICKET``.

Dry runs (``--dry-run DIR``) and tester mode (``--test-to``) write nothing to the database: their
messages have test tickets, and the digests stay due for the real run.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.policy import SMTP
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ingestor.catalog import Catalog, severities_at_least
from ingestor.config import Settings
from ingestor.constituents import QUERIES
from ingestor.db.connect import Database
from ingestor.errors import ConfigError, InstanceLockedError, StopRequested
from ingestor.notify.compose import Digest, Envelope, Templates, TypeDigest, build_message
from ingestor.notify.smtp import Mailer, SendError

log = logging.getLogger(__name__)

ITERSIZE = 5000
SMTP_POLICY = SMTP.clone(max_line_length=998)
"""CRLF line ends (smtplib sends bytes as they are); headers folded only past RFC 5322's hard limit (folding
at 78 put the subject on a continuation line, shown with a leading space)."""


@dataclass
class NotifyOptions:
    org: str | None = None
    since: date | None = None
    dry_run: Path | None = None
    test_to: str | None = None
    today: date | None = None

    @property
    def records(self) -> bool:
        """Whether this run writes the delivery log (not a dry run, not tester mode)."""
        return self.dry_run is None and self.test_to is None


@dataclass
class NotifyResult:
    due: int = 0
    prepared: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    nothing_new: int = 0
    without_contact: list[str] = field(default_factory=list[str])
    in_doubt: list[str] = field(default_factory=list[str])
    written: list[Path] = field(default_factory=list[Path])
    errors: list[str] = field(default_factory=list[str])
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        if self.failed and not self.sent:
            return 1
        return 4 if self.failed or self.in_doubt else 0


def envelope_for(settings: Settings, to: list[str], *, test: bool) -> Envelope:
    if not settings.notify_from:
        raise ConfigError(["NOTIFY_FROM: must be set to send digests (the From address)"])
    return Envelope(settings.notify_from, to, settings.notify_reply_to, None if test else settings.notify_bcc)


def notify(
    settings: Settings,
    db: Database,
    catalog: Catalog,
    options: NotifyOptions,
    *,
    mailer: Mailer | None = None,
    stop: threading.Event | None = None,
) -> NotifyResult:
    """One notify run (see the module docstring); ``mailer`` is made from the settings when needed."""
    started = time.monotonic()
    result = NotifyResult()
    envelope_for(settings, [], test=True)  # NOTIFY_FROM is checked before anything is done
    if options.dry_run is None and mailer is None:
        if not settings.smtp_host:
            raise ConfigError(["SMTP_HOST: must be set to send digests (or use --dry-run DIR)"])
        mailer = Mailer(settings)
    with db.connection() as lock_conn:
        lock_conn.autocommit = True
        row = lock_conn.execute(QUERIES["notify_lock"]).fetchone()
        if not (row and row[0]):
            raise InstanceLockedError("another notify is running on this database; try again when it ends")
        try:
            with db.connection() as conn:
                conn.autocommit = True
                if options.records:
                    result.in_doubt = [
                        f"{r[1]} ({r[2]}, sending started {r[3]:%Y-%m-%d %H:%M:%S} UTC)"
                        for r in conn.execute(QUERIES["in_doubt_notifications"]).fetchall()
                    ]
                _prepare(settings, db, conn, catalog, options, result, mailer, stop)
                if options.records and mailer is not None:
                    _send_pending(conn, mailer, settings, result, stop)
        finally:
            if mailer is not None:
                mailer.close()
            lock_conn.execute(QUERIES["notify_unlock"])
    result.seconds = time.monotonic() - started
    return result


def _orgs(conn: psycopg.Connection[Any], options: NotifyOptions) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(QUERIES["notify_orgs"], {"name": options.org}).fetchall()


def _prepare(
    settings: Settings,
    db: Database,
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    options: NotifyOptions,
    result: NotifyResult,
    mailer: Mailer | None,
    stop: threading.Event | None,
) -> None:
    today = options.today or datetime.now(UTC).date()
    since = options.since or today - timedelta(days=settings.notify_lookback_days)
    orgs: dict[int, dict[str, Any]] = {}
    for org in _orgs(conn, options):
        if not org["notify_enabled"] and options.org is None:
            continue
        if not org["due"] and options.records:
            continue
        if not org["emails"]:
            result.without_contact.append(org["name"])
            continue
        orgs[org["id"]] = org
    result.due = len(orgs)
    if not orgs:
        return
    templates = Templates(settings.notify_template_dir)
    hold = settings.notify_max_attachment * 4
    test_number = 0
    for digest in _digests(db, orgs, since, settings, hold):
        if stop is not None and stop.is_set():
            raise StopRequested("stop requested while preparing digests; the prepared ones are kept")
        if not digest.events:
            result.nothing_new += 1
            if options.records and digest.file_ids:
                _record(conn, digest, None, None)
            continue
        if not options.records:
            test_number += 1
            ticket = f"{settings.notify_ticket_prefix}-TEST-{test_number:06d}"
            to = [options.test_to] if options.test_to else list(digest.org["emails"])
            envelope = envelope_for(settings, to, test=True)
            message = _message(digest, envelope, catalog, templates, settings, ticket)
            if options.dry_run is not None:
                options.dry_run.mkdir(parents=True, exist_ok=True)
                path = options.dry_run / f"{ticket}.eml"
                path.write_bytes(message)
                result.written.append(path)
            else:
                assert mailer is not None
                try:
                    mailer.send(envelope.sender, envelope.recipients, message)
                    result.sent += 1
                except SendError as exc:
                    result.failed += 1
                    result.errors.append(f"{ticket} ({digest.org['name']}): {exc}")
            result.prepared += 1
            continue
        envelope = envelope_for(settings, list(digest.org["emails"]), test=False)
        compose = functools.partial(_message, digest, envelope, catalog, templates, settings)
        _record(conn, digest, envelope, compose, prefix=settings.notify_ticket_prefix)
        result.prepared += 1


def _message(
    digest: Digest, envelope: Envelope, catalog: Catalog, templates: Templates, settings: Settings, ticket: str
) -> bytes:
    message = build_message(
        digest,
        ticket=ticket,
        envelope=envelope,
        catalog=catalog,
        templates=templates,
        limit=settings.notify_max_attachment,
        oversize=settings.notify_oversize,
    )
    return message.as_bytes(policy=SMTP_POLICY)


def _record(
    conn: psycopg.Connection[Any],
    digest: Digest,
    envelope: Envelope | None,
    compose: Callable[[str], bytes] | None,
    *,
    prefix: str = "SSI",
) -> None:
    """Write a prepared digest (or, with ``envelope`` None, only the files seen without anything to send)."""
    with conn.transaction():
        notification_id = None
        if envelope is not None:
            row = conn.execute(QUERIES["next_notification_id"]).fetchone()
            assert row is not None
            notification_id = int(row[0])
            ticket = f"{prefix}-{notification_id:06d}"
            assert compose is not None
            message = compose(ticket)
            message_id = _header(message, b"Message-ID")
            conn.execute(
                QUERIES["insert_notification_with_id"],
                {
                    "id": notification_id,
                    "org_id": digest.org_id,
                    "org_name": digest.org["name"],
                    "ticket": ticket,
                    "message_id": message_id,
                    "recipients": envelope.recipients,
                    "window_start": digest.window_start,
                    "window_end": digest.window_end,
                    "events": digest.events,
                    "findings": digest.findings,
                    "suppressed": digest.suppressed,
                    "message": message,
                },
            )
            types, keys = zip(*sorted(digest.sent_findings), strict=True) if digest.sent_findings else ((), ())
            conn.execute(
                QUERIES["note_findings"],
                {"org_id": digest.org_id, "notification_id": notification_id, "types": list(types), "keys": list(keys)},
            )
        conn.execute(
            QUERIES["cover_files"],
            {"org_id": digest.org_id, "notification_id": notification_id, "file_ids": sorted(digest.file_ids)},
        )


def _header(message: bytes, name: bytes) -> str:
    head = message.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    for line in head.splitlines():
        if line.lower().startswith(name.lower() + b":"):
            return line.split(b":", 1)[1].strip().decode("ascii", "replace")
    raise ValueError(f"message without {name.decode()}")


def _digests(
    db: Database, orgs: dict[int, dict[str, Any]], since: date, settings: Settings, hold: int
) -> Iterator[Digest]:
    """Each organisation's digest, built while its rows stream by (one organisation in memory at a time)."""
    params = {"since": since, "org_ids": sorted(orgs)}
    digest: Digest | None = None
    recent: set[tuple[str, str]] = set()
    severities: set[str] | None = None
    types: set[str] | None = None
    with db.connection() as conn, conn.transaction():
        conn.execute("SET TRANSACTION READ ONLY")
        with conn.cursor(name="ss_digest_rows", binary=True) as cursor:
            cursor.itersize = ITERSIZE
            cursor.execute(QUERIES["digest_events"], params)
            for org_id, report_type, report_date, file_id, ip, severity, raw, finding_key, first_seen in cursor:
                if digest is None or digest.org_id != org_id:
                    if digest is not None:
                        yield digest
                    org = orgs[org_id]
                    digest = Digest(org_id, org)
                    rows = conn.execute(
                        QUERIES["recently_notified"], {"org_id": org_id, "hours": settings.notify_suppress_hours}
                    ).fetchall()
                    recent = {(str(t), str(k)) for t, k in rows} if settings.notify_suppress_hours else set()
                    severities = (
                        set(severities_at_least(org["notify_min_severity"])) if org["notify_min_severity"] else None
                    )
                    types = set(org["notify_types"]) if org["notify_types"] else None
                digest.file_ids.add(int(file_id))
                if types is not None and report_type not in types:
                    continue
                if severities is not None and severity not in severities:
                    continue
                if digest.org["notify_mode"] == "new" and first_seen is not None and first_seen < report_date:
                    continue
                key = (str(report_type), str(finding_key))
                if key in recent:
                    digest.suppressed += 1
                    continue
                digest.sent_findings.add(key)
                digest.note_date(report_date)
                kind = digest.types.get(report_type)
                if kind is None:
                    kind = digest.types[report_type] = TypeDigest(report_type)
                kind.add(str(ip) if ip is not None else None, severity, raw, str(finding_key), hold)
    if digest is not None:
        yield digest


def _send_pending(
    conn: psycopg.Connection[Any],
    mailer: Mailer,
    settings: Settings,
    result: NotifyResult,
    stop: threading.Event | None,
) -> None:
    assert settings.notify_from
    for notification_id, ticket, org_name, recipients, message, status, _attempts in conn.execute(
        QUERIES["pending_notifications"]
    ).fetchall():
        if stop is not None and stop.is_set():
            return
        if status == "failed":
            result.retried += 1
        conn.execute(QUERIES["start_attempt"], {"id": notification_id})
        try:
            note = mailer.send(settings.notify_from, list(recipients), bytes(message))
        except SendError as exc:
            conn.execute(QUERIES["mark_failed"], {"id": notification_id, "error": str(exc)})
            result.failed += 1
            result.errors.append(f"{ticket} ({org_name}): {exc}")
            log.warning("digest %s for %s not sent: %s (retried on the next run)", ticket, org_name, exc)
            continue
        conn.execute(QUERIES["mark_sent"], {"id": notification_id, "error": note})
        result.sent += 1
        log.info("digest %s sent to %s", ticket, org_name)


def resolve(db: Database, ticket: str, *, sent: bool) -> bool:
    """The operator's word on an in-doubt digest: it was delivered (``sent``), or send it again."""
    with db.connection() as conn:
        row = conn.execute(QUERIES["resolve_sent" if sent else "resolve_resend"], {"ticket": ticket}).fetchone()
        conn.commit()
    return row is not None
