"""Who may connect to the embedded server: its ``pg_hba.conf`` and the viewer role.

The Unix socket sits in a private 0700 directory, so ``trust`` there only lets in this account. Over
TCP (``EMBEDDED_DB_LISTEN``, off by default) only the viewer role may log in, to the ingestor's
database, with its password checked by SCRAM: never ``trust``. The viewer's password is sent to the
server as a SCRAM verifier computed here, so the clear password reaches neither the server nor its log.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import unicodedata
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from ingestor.errors import EmbeddedPostgresError

HBA_HEADER = "# Written by shadowserver-ingestor each time it starts this server: edits here are overwritten.\n"


def hba_rules(db_name: str, viewer_role: str | None, tcp: bool) -> str:
    """The whole ``pg_hba.conf``: trust on the private socket; with ``tcp``, the viewer with a password."""
    for name in (db_name, viewer_role or ""):
        if any(ch in name for ch in '"\n\r'):
            raise EmbeddedPostgresError(f"the embedded server cannot serve the name {name!r} (quotes, line breaks)")
    lines = [HBA_HEADER, "# The Unix socket is in a private directory (mode 0700): only this account reaches it.\n"]
    lines.append("local all all trust\n")
    if tcp and viewer_role:
        lines.append("# TCP (EMBEDDED_DB_LISTEN): the viewer role only, to its database, with its password.\n")
        lines.append(f'host "{db_name}" "{viewer_role}" all scram-sha-256\n')
    else:
        lines.append("# No TCP access (EMBEDDED_DB_LISTEN is not set).\n")
    return "".join(lines)


def write_hba(data_dir: Path, rules: str, account: tuple[int, int] | None) -> None:
    """Replace ``pg_hba.conf`` atomically, readable by the server's account only."""
    target = data_dir / "pg_hba.conf"
    staging = data_dir / "pg_hba.conf.new"
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(rules)
    if account is not None:
        os.chown(staging, *account)
    staging.replace(target)


def ensure_viewer(conn: psycopg.Connection[Any], role: str, password: str | None) -> None:
    """Create the viewer role (LOGIN, nothing else) if missing; give it ``password`` unless it has it."""
    with contextlib.suppress(psycopg.errors.DuplicateObject):  # a concurrent start was faster
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone() is None:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    if not password or viewer_password_matches(conn, role, password):
        return
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()
    conn.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier)))


def viewer_password_matches(conn: psycopg.Connection[Any], role: str, password: str) -> bool:
    """Whether ``role``'s stored SCRAM verifier is that of ``password`` (needs a superuser connection)."""
    row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", [role]).fetchone()
    return bool(row and row[0] and scram_matches(str(row[0]), password))


def scram_matches(verifier: str, password: str) -> bool:
    """Check ``password`` against a ``SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey`` verifier (RFC 5802)."""
    try:
        method, params, keys = verifier.split("$")
        iterations, salt = params.split(":")
        stored_key = base64.b64decode(keys.split(":")[0])
        salted = hashlib.pbkdf2_hmac("sha256", _saslprep(password), base64.b64decode(salt), int(iterations))
    except ValueError:
        return False
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    return method == "SCRAM-SHA-256" and hmac.compare_digest(hashlib.sha256(client_key).digest(), stored_key)


def _saslprep(password: str) -> bytes:
    # PostgreSQL normalises with SASLprep (NFKC plus a few mappings) and uses the raw bytes when that
    # fails; NFKC is exact for ASCII and ordinary passwords, which is all a change detector needs.
    return unicodedata.normalize("NFKC", password).encode()
