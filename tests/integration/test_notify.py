"""``notify`` against a real SMTP server on loopback: every organisation gets exactly its own events, once;
a second run sends nothing; an SMTP outage loses nothing and duplicates nothing; an in-doubt digest is
never resent by itself; dry runs and tester mode record nothing; big attachments are zipped or cut."""

from __future__ import annotations

import csv
import io
import threading
import zipfile
from datetime import date
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ingestor.catalog import load_catalog
from ingestor.config import load_settings
from ingestor.db.connect import Database
from ingestor.notify.run import NotifyOptions, notify
from ingestor.notify.smtp import Mailer

from fixtures.cli import invoke, query
from fixtures.orgs import ORGS_CSV, OWNERS, SUBJECTS, report_file
from fixtures.smtp import Received, SmtpServer

SINCE = "2026-11-01"
REPORT_COLUMNS = ["timestamp", "ip", "port", "hostname", "tag", "asn", "geo", "severity"]


def setup(url: str, folder: Path, orgs: str = ORGS_CSV) -> None:
    (folder / "orgs.csv").write_text(orgs)
    assert invoke(url, "orgs", "import", str(folder / "orgs.csv")).exit_code == 0
    assert invoke(url, "import", str(report_file(folder, "2026-11-20-scan_http-a.csv", SUBJECTS))).exit_code == 0


def execute(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)  # type: ignore[arg-type]


def run_notify(url: str, server: SmtpServer, *args: str, **env: str) -> Any:
    return invoke(url, "notify", "--since", SINCE, *args, env=server.env(**env))


def attachments(message: EmailMessage) -> dict[str, list[dict[str, str]]]:
    found: dict[str, list[dict[str, str]]] = {}
    for part in message.iter_attachments():
        name = str(part.get_filename())
        data = part.get_content()
        if name.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                data = archive.read(archive.namelist()[0]).decode()
                name = name.removesuffix(".zip")
        text = data if isinstance(data, str) else data.decode()
        found[name] = list(csv.DictReader(io.StringIO(text)))
    return found


def by_org(received: list[Received]) -> dict[str, Received]:
    """Received messages keyed by the organisation named in the subject."""
    out: dict[str, Received] = {}
    for item in received:
        subject = str(item.message["Subject"])
        name = subject.split("Shadowserver findings for ", 1)[1].rsplit(":", 1)[0]
        assert name not in out, f"two digests for {name}"
        out[name] = item
    return out


def expected_rows() -> dict[str, set[str]]:
    owned: dict[str, set[str]] = {}
    for subject, names in zip(SUBJECTS, OWNERS, strict=True):
        for name in names:
            owned.setdefault(name, set()).add(subject["ip"] or subject["hostname"])
    return owned


def test_each_organisation_gets_exactly_its_own_events_once(
    migrated_db_url: str, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    setup(migrated_db_url, tmp_path)

    result = run_notify(migrated_db_url, smtp_server)

    assert result.exit_code == 0, result.stdout + result.stderr
    emails = {
        row[0]: set(row[1])
        for row in query(
            migrated_db_url,
            "SELECT o.name, ARRAY(SELECT email FROM ss_org_contacts c WHERE c.org_id = o.id) FROM ss_orgs o",
        )
    }
    received = by_org(smtp_server.received)
    assert set(received) == set(expected_rows())
    for name, item in received.items():
        message = item.message
        assert set(item.recipients) == emails[name] | {"archive@cert.example"}  # Bcc: envelope only
        assert "archive@cert.example" not in str(message["To"]) and message["Bcc"] is None
        assert message["Reply-To"] == "cert@cert.example" and message["Message-ID"]
        ticket = str(message["X-Ticket"])
        assert str(message["Subject"]).startswith(f"[{ticket}] ")
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        assert text is not None and html is not None
        assert "scan_http" in text.get_content() and "https://" in text.get_content()  # the type's description link
        assert '<a href="https://' in html.get_content()
        files = attachments(message)
        assert list(files) == [f"{ticket}-scan_http.csv"]
        rows = files[f"{ticket}-scan_http.csv"]
        published = load_catalog().types["scan_http"].fields  # the report's own columns, in the published order
        assert list(rows[0]) == [column for column in published if column in REPORT_COLUMNS]
        assert {row["ip"] or row["hostname"] for row in rows} == expected_rows()[name]
    log = query(migrated_db_url, "SELECT org_name, status, events, recipients FROM ss_notifications ORDER BY org_name")
    assert [(r[0], r[1], r[2]) for r in log] == sorted((n, "sent", len(v)) for n, v in expected_rows().items())

    again = run_notify(migrated_db_url, smtp_server)
    assert again.exit_code == 0 and len(smtp_server.received) == len(received)

    # A day later (the interval has passed) a new file: only its events go out, the old ones never again.
    execute(migrated_db_url, "UPDATE ss_notifications SET prepared_at = prepared_at - interval '25 hours'")
    report_file(tmp_path, "2026-11-21-scan_http-b.csv", [{"ip": "192.0.2.99", "asn": "64500", "port": "443"}])
    assert invoke(migrated_db_url, "import", str(tmp_path / "2026-11-21-scan_http-b.csv")).exit_code == 0
    later = run_notify(migrated_db_url, smtp_server)
    assert later.exit_code == 0, later.stderr
    new = smtp_server.received[len(received) :]
    assert len(new) == 1 and "Example ISP" in str(new[0].message["Subject"])
    assert [row["ip"] for rows in attachments(new[0].message).values() for row in rows] == ["192.0.2.99"]


def test_a_finding_is_not_sent_twice_within_its_suppression_window(
    migrated_db_url: str, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    setup(migrated_db_url, tmp_path)
    assert run_notify(migrated_db_url, smtp_server).exit_code == 0
    first = len(smtp_server.received)
    execute(migrated_db_url, "UPDATE ss_notifications SET prepared_at = prepared_at - interval '25 hours'")
    # The next day's report names the same hosts and ports again: the same findings.
    assert (
        invoke(migrated_db_url, "import", str(report_file(tmp_path, "2026-11-21-scan_http-c.csv", SUBJECTS))).exit_code
        == 0
    )

    result = run_notify(migrated_db_url, smtp_server)

    assert result.exit_code == 0 and len(smtp_server.received) == first
    assert "with nothing new" in result.stdout
    # With the window over, they are reported again.
    execute(migrated_db_url, "UPDATE ss_notified_findings SET last_sent_at = last_sent_at - interval '8 days'")
    execute(migrated_db_url, "UPDATE ss_notifications SET prepared_at = prepared_at - interval '25 hours'")
    report_file(tmp_path, "2026-11-22-scan_http-d.csv", SUBJECTS[:1])
    assert invoke(migrated_db_url, "import", str(tmp_path / "2026-11-22-scan_http-d.csv")).exit_code == 0
    assert run_notify(migrated_db_url, smtp_server).exit_code == 0
    assert len(smtp_server.received) == first + 1


def test_smtp_down_then_up_sends_each_digest_once(
    migrated_db_url: str, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    setup(migrated_db_url, tmp_path)
    smtp_server.stop()

    down = run_notify(migrated_db_url, smtp_server)

    assert down.exit_code == 1 and "failed:" in down.stderr and "ConnectionRefusedError" in down.stderr
    assert query(migrated_db_url, "SELECT DISTINCT status FROM ss_notifications") == [("failed",)]
    smtp_server.start()
    smtp_server.handler.answer = "451 4.3.0 try again later"
    busy = run_notify(migrated_db_url, smtp_server)
    assert busy.exit_code == 1 and "SMTP 451: 4.3.0 try again later" in busy.stderr
    smtp_server.handler.answer = None

    up = run_notify(migrated_db_url, smtp_server)

    assert up.exit_code == 0, up.stderr
    received = by_org(smtp_server.received)  # raises on a second digest for one organisation
    assert set(received) == set(expected_rows())
    for name, item in received.items():
        assert {row["ip"] or row["hostname"] for rows in attachments(item.message).values() for row in rows} == (
            expected_rows()[name]
        )
    assert run_notify(migrated_db_url, smtp_server).exit_code == 0
    assert len(smtp_server.received) == len(received)
    assert query(migrated_db_url, "SELECT DISTINCT status, attempts FROM ss_notifications") == [("sent", 3)]


class CrashAfterAcceptance(Mailer):
    """The SMTP server accepts the message, then the process dies before it can record that."""

    def send(self, sender: str, recipients: list[str], message: bytes) -> str | None:
        super().send(sender, recipients, message)
        raise SystemExit("killed")


def test_a_crash_after_the_server_accepted_a_digest_never_resends_it_silently(
    migrated_db_url: str, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    setup(migrated_db_url, tmp_path, "name,emails,networks\nExample ISP,abuse@isp.example,192.0.2.0/24\n")
    settings = load_settings({"DATABASE_URL": migrated_db_url, **smtp_server.env()}, env_file=None)
    with Database(migrated_db_url) as db, pytest.raises(SystemExit):
        notify(
            settings, db, load_catalog(), NotifyOptions(since=date(2026, 11, 1)), mailer=CrashAfterAcceptance(settings)
        )
    assert len(smtp_server.received) == 1
    ((ticket,),) = query(migrated_db_url, "SELECT ticket FROM ss_notifications")

    after = run_notify(migrated_db_url, smtp_server)

    assert after.exit_code == 4 and f"in doubt: {ticket} (Example ISP" in after.stderr
    assert len(smtp_server.received) == 1
    resent = run_notify(migrated_db_url, smtp_server, "--resend", ticket)
    assert resent.exit_code == 0, resent.stderr
    assert len(smtp_server.received) == 2
    assert smtp_server.received[0].message["Message-ID"] == smtp_server.received[1].message["Message-ID"]
    assert query(migrated_db_url, "SELECT status FROM ss_notifications") == [("sent",)]


def test_dry_run_and_tester_mode_record_nothing(migrated_db_url: str, tmp_path: Path, smtp_server: SmtpServer) -> None:
    setup(migrated_db_url, tmp_path)

    dry = run_notify(migrated_db_url, smtp_server, "--dry-run", str(tmp_path / "out"))
    tester = run_notify(migrated_db_url, smtp_server, "--test-to", "tester@cert.example", "--org", "Customer Ltd")

    assert dry.exit_code == 0 and tester.exit_code == 0, dry.stderr + tester.stderr
    written = sorted((tmp_path / "out").glob("*.eml"))
    assert len(written) == len(expected_rows())
    assert [r.recipients for r in smtp_server.received] == [["tester@cert.example"]]
    assert query(migrated_db_url, "SELECT count(*) FROM ss_notifications") == [(0,)]
    assert query(migrated_db_url, "SELECT count(*) FROM ss_notification_files") == [(0,)]
    real = run_notify(migrated_db_url, smtp_server)  # the real run still sends everything
    assert real.exit_code == 0 and len(smtp_server.received) == 1 + len(expected_rows())


def test_an_attachment_over_the_limit_is_zipped_or_cut_with_a_note(
    migrated_db_url: str, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    (tmp_path / "orgs.csv").write_text("name,emails,networks,mode\nBig,big@big.example,10.0.0.0/8,all\n")
    assert invoke(migrated_db_url, "orgs", "import", str(tmp_path / "orgs.csv")).exit_code == 0
    rows = [{"ip": f"10.0.{n // 250}.{n % 250}", "asn": "", "tag": "x" * 40} for n in range(400)]
    assert (
        invoke(migrated_db_url, "import", str(report_file(tmp_path, "2026-11-20-scan_http-z.csv", rows))).exit_code == 0
    )

    zipped = run_notify(migrated_db_url, smtp_server, "--test-to", "t@cert.example", NOTIFY_MAX_ATTACHMENT="20KiB")
    cut = run_notify(
        migrated_db_url,
        smtp_server,
        "--test-to",
        "t@cert.example",
        NOTIFY_MAX_ATTACHMENT="20KiB",
        NOTIFY_OVERSIZE="truncate",
    )

    assert zipped.exit_code == 0 and cut.exit_code == 0, zipped.stderr + cut.stderr
    first, second = (item.message for item in smtp_server.received)
    (name,) = [str(part.get_filename()) for part in first.iter_attachments()]
    assert name.endswith(".csv.zip") and len(next(iter(attachments(first).values()))) == 400
    kept = next(iter(attachments(second).values()))
    assert 0 < len(kept) < 400
    body = second.get_body(("plain",))
    assert body is not None and f"truncated to the first {len(kept)} of 400 rows" in body.get_content()


def test_templates_a_cert_overrides_per_language(migrated_db_url: str, tmp_path: Path, smtp_server: SmtpServer) -> None:
    setup(migrated_db_url, tmp_path)
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "subject.de.txt.j2").write_text("[{{ ticket }}] Befunde für {{ org.name }}")
    (tmp_path / "templates" / "body.de.txt.j2").write_text(
        "Guten Tag {{ org.name }},\n{% for t in types %}{{ t.type }}: {{ t.rows }} Ereignisse\n{% endfor %}"
    )

    result = run_notify(
        migrated_db_url, smtp_server, "--test-to", "t@cert.example", NOTIFY_TEMPLATE_DIR=str(tmp_path / "templates")
    )

    assert result.exit_code == 0, result.stderr
    subjects = {str(item.message["Subject"]) for item in smtp_server.received}
    german = [s for s in subjects if "Befunde" in s]
    assert len(german) == 1 and german[0].endswith("Befunde für Customer Ltd")  # language de
    (customer,) = [i.message for i in smtp_server.received if "Befunde" in str(i.message["Subject"])]
    body = customer.get_body(("plain",))
    assert (
        body is not None
        and body.get_content().replace("\r\n", "\n") == "Guten Tag Customer Ltd,\nscan_http: 1 Ereignisse\n"
    )
    assert len(subjects) == len(expected_rows())  # the others: the default English templates


def test_the_service_sends_the_digests_a_cycle_made_due(
    migrated_db_url: str, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    from ingestor.service.health import HealthState
    from ingestor.service.scheduler import Scheduler

    setup(migrated_db_url, tmp_path)
    env = {"DATABASE_URL": migrated_db_url, **smtp_server.env(NOTIFY_LOOKBACK_DAYS="3650")}
    off = load_settings(env, env_file=None)
    on = load_settings({**env, "NOTIFY_ENABLED": "true"}, env_file=None)
    with Database(migrated_db_url) as db:
        ingestor: Any = type("Ingestor", (), {"catalog": load_catalog()})()
        assert Scheduler(off, db, ingestor, HealthState(), threading.Event()).send_digests() is None
        assert smtp_server.received == []
        result = Scheduler(on, db, ingestor, HealthState(), threading.Event()).send_digests()
    assert result is not None and result.sent == len(expected_rows()) == len(smtp_server.received)


def test_notify_enabled_needs_a_server_and_a_sender() -> None:
    from ingestor.errors import ConfigError

    with pytest.raises(ConfigError, match="NOTIFY_ENABLED needs SMTP_HOST and NOTIFY_FROM"):
        load_settings({"NOTIFY_ENABLED": "1", "SMTP_HOST": "127.0.0.1"}, env_file=None)


def test_the_log_keeps_a_message_until_it_is_sent(
    migrated_db_url: str, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    setup(migrated_db_url, tmp_path)
    smtp_server.stop()
    assert run_notify(migrated_db_url, smtp_server).exit_code == 1
    assert query(migrated_db_url, "SELECT bool_and(message IS NOT NULL) FROM ss_notifications") == [(True,)]
    smtp_server.start()
    assert run_notify(migrated_db_url, smtp_server).exit_code == 0
    assert query(migrated_db_url, "SELECT bool_and(message IS NULL) FROM ss_notifications") == [(True,)]
