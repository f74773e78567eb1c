"""Digests over STARTTLS and implicit TLS with a verified certificate, and SMTP authentication (aiosmtpd on
loopback with a certificate of a test CA, trustme)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import AuthResult, LoginPassword

from ingestor.catalog import load_catalog
from ingestor.config import load_settings
from ingestor.db.connect import Database
from ingestor.notify.run import NotifyOptions, NotifyResult, notify
from ingestor.notify.smtp import Mailer

from fixtures.cli import invoke
from fixtures.orgs import report_file
from fixtures.smtp import SmtpServer


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"ingestor", b"s3cret-pw")
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.fixture
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def prepared(url: str, folder: Path) -> None:
    (folder / "orgs.csv").write_text("name,emails,networks,mode\nExample ISP,abuse@isp.example,192.0.2.0/24,all\n")
    assert invoke(url, "orgs", "import", str(folder / "orgs.csv")).exit_code == 0
    report = report_file(folder, "2026-11-20-scan_http-t.csv", [{"ip": "192.0.2.1", "asn": ""}])
    assert invoke(url, "import", str(report)).exit_code == 0


def send(url: str, server: SmtpServer, context: ssl.SSLContext, **env: str) -> NotifyResult:
    settings = load_settings({"DATABASE_URL": url, **server.env(**env)}, env_file=None)
    with Database(url) as db:
        return notify(
            settings,
            db,
            load_catalog(),
            NotifyOptions(since=date(2026, 11, 1)),
            mailer=Mailer(settings, context=context),
        )


@pytest.fixture
def starttls_server(server_context: ssl.SSLContext) -> Iterator[SmtpServer]:
    server = SmtpServer(
        tls_context=server_context, require_starttls=True, authenticator=authenticate, auth_required=True
    )
    server.start()
    yield server
    server.stop()


def test_starttls_with_login(
    migrated_db_url: str, tmp_path: Path, starttls_server: SmtpServer, client_context: ssl.SSLContext
) -> None:
    prepared(migrated_db_url, tmp_path)
    credentials = {"SMTP_SECURITY": "starttls", "SMTP_USER": "ingestor"}

    wrong = send(migrated_db_url, starttls_server, client_context, **credentials, SMTP_PASSWORD="wrong-pw")
    right = send(migrated_db_url, starttls_server, client_context, **credentials, SMTP_PASSWORD="s3cret-pw")

    assert wrong.failed == 1 and wrong.errors and "SMTP 535" in wrong.errors[0]
    assert "wrong-pw" not in " ".join(wrong.errors)
    assert right.sent == 1 and right.retried == 1 and len(starttls_server.received) == 1


def test_a_certificate_the_client_does_not_trust_is_a_failure(
    migrated_db_url: str, tmp_path: Path, starttls_server: SmtpServer
) -> None:
    prepared(migrated_db_url, tmp_path)

    result = send(
        migrated_db_url,
        starttls_server,
        ssl.create_default_context(),
        SMTP_SECURITY="starttls",
        SMTP_USER="ingestor",
        SMTP_PASSWORD="s3cret-pw",
    )

    assert result.failed == 1 and "CERTIFICATE_VERIFY_FAILED" in result.errors[0]
    assert starttls_server.received == []


def test_implicit_tls(
    migrated_db_url: str, tmp_path: Path, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    prepared(migrated_db_url, tmp_path)
    server = SmtpServer(ssl_context=server_context, server_hostname="127.0.0.1")
    server.start()
    try:
        result = send(migrated_db_url, server, client_context, SMTP_SECURITY="tls")
    finally:
        server.stop()
    assert result.sent == 1 and len(server.received) == 1
