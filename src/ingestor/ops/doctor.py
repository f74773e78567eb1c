"""``doctor``: what a new deployment gets wrong, checked in the order it goes wrong, one verdict a line.

Each :class:`Verdict` is ``ok``, ``warn`` (works, but look at it), ``fail`` (something will not work:
the line says what to do) or ``skip`` (cannot be checked because something before it failed). The
checks read and probe only: they never migrate, grant or write (the embedded server is started for the
database checks, as for any command, and stops after the last process leaves it).
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
import psycopg
from psycopg.rows import dict_row

from ingestor.api.client import ShadowserverClient
from ingestor.config import Settings, load_settings
from ingestor.errors import ApiAuthError, ConfigError, IngestorError
from ingestor.ops import QUERIES
from ingestor.redaction import first_line, redact

SUPPORTED_MAJORS = range(15, 19)
"""PostgreSQL majors the test suite runs on (15 to 18)."""

SKEW_WARN_SECONDS = 60.0
SKEW_FAIL_SECONDS = 300.0
"""Clock skew against the API's ``Date`` header: report dates and windows are UTC days, so minutes matter
around midnight; more than five minutes is a broken clock (run NTP)."""


@dataclass(frozen=True)
class Verdict:
    """One line of ``doctor``: what was checked, how it went, and what to do about it."""

    area: str
    status: str  # ok | warn | fail | skip
    message: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"area": self.area, "status": self.status, "message": self.message, "fix": self.fix}


def ok(area: str, message: str) -> Verdict:
    return Verdict(area, "ok", message)


def warn(area: str, message: str, fix: str = "") -> Verdict:
    return Verdict(area, "warn", message, fix)


def fail(area: str, message: str, fix: str = "") -> Verdict:
    return Verdict(area, "fail", message, fix)


@dataclass
class Doctor:
    """The checks, with what they depend on injectable: the clock, the settings' source, the client."""

    environ: dict[str, str] | None = None
    env_file: Path | None = Path(".env")
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    make_client: Callable[[Settings], ShadowserverClient] | None = None
    stop: threading.Event | None = None

    def run(self) -> Iterator[Verdict]:
        """Every check, in order; later ones are skipped when what they need failed."""
        settings = yield from self.configuration()
        if settings is None:
            yield Verdict("api", "skip", "not checked: the configuration is invalid")
            yield Verdict("database", "skip", "not checked: the configuration is invalid")
            return
        yield from self.api(settings)
        yield from self.embedded(settings)
        yield from self.database(settings)
        yield from self.disk(settings)
        yield from self.health_port(settings)

    # ---- configuration --------------------------------------------------------------------------

    def configuration(self) -> Generator[Verdict, None, Settings | None]:
        source = "the environment" + (
            f" and {self.env_file.absolute()}" if self.env_file is not None and self.env_file.is_file() else ""
        )
        try:
            settings = load_settings(self.environ, env_file=self.env_file)
        except ConfigError as exc:
            for problem in exc.problems:
                yield fail("config", problem, f"fix it in {source}")
            return None
        yield ok("config", f"read from {source}")
        if not (settings.api_key.get_secret_value() and settings.api_secret.get_secret_value()):
            yield fail(
                "config",
                "SS_API_KEY and SS_API_SECRET are not both set: nothing can be downloaded",
                "set them (or SS_API_KEY_FILE / SS_API_SECRET_FILE) to your Shadowserver API key and secret",
            )
        if settings.api_is_local and settings.uses_embedded_db and settings.embedded_db_dir is None:
            yield fail(
                "config",
                f"SS_API_URL is a simulator ({urlsplit(settings.api_url).netloc}) and its data would go to the default"
                " embedded database",
                "set EMBEDDED_DB_DIR to a directory of its own for simulated data",
            )
        return settings

    # ---- API ------------------------------------------------------------------------------------

    def api(self, settings: Settings) -> Iterator[Verdict]:
        if not (settings.api_key.get_secret_value() and settings.api_secret.get_secret_value()):
            yield Verdict("api", "skip", "not checked: no API key")
            return
        from ingestor.cli.runtime import make_client

        stop = self.stop or threading.Event()
        client = self.make_client(settings) if self.make_client else make_client(settings, stop)
        try:
            try:
                answer = client.ping()
            except ApiAuthError as exc:
                yield fail("api", first_line(exc), "check SS_API_KEY and SS_API_SECRET (Shadowserver's e-mail)")
                return
            except IngestorError as exc:
                yield fail(
                    "api",
                    first_line(exc),
                    f"check that this machine reaches {urlsplit(settings.api_url).netloc} (proxy, firewall, DNS)",
                )
                return
            yield ok("api", f"{urlsplit(settings.api_url).netloc} answers test/ping ({answer.get('pong', 'pong')})")
            yield from self._clock(client.server_date)
            yield from self._key(client)
            yield from self._subscriptions(client, settings)
        finally:
            client.close()

    def _clock(self, server_date: datetime | None) -> Iterator[Verdict]:
        if server_date is None:
            yield warn("clock", "the API sent no Date header: the clock cannot be compared")
            return
        skew = (self.now() - server_date).total_seconds()
        text = f"this machine's clock is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} the API's"
        if abs(skew) <= SKEW_WARN_SECONDS:
            yield ok("clock", f"{text} (Date header)")
        elif abs(skew) <= SKEW_FAIL_SECONDS:
            yield warn("clock", text, "synchronise the clock (NTP): report days are UTC days")
        else:
            yield fail("clock", text, "synchronise the clock (NTP, e.g. systemd-timesyncd or chrony)")

    def _key(self, client: ShadowserverClient) -> Iterator[Verdict]:
        try:
            info = client.key_info()
        except IngestorError as exc:
            yield warn("api", f"key/info: {first_line(exc)}")
            return
        status, raw = str(info.get("status", "")), info.get("access")
        access = [str(item) for item in cast("list[object]", raw)] if isinstance(raw, list) else []
        if status and status != "active":
            yield fail("api", f"the key's status is {status!r}, not active", "ask Shadowserver to activate the key")
        elif access and "reports" not in access:
            yield fail(
                "api",
                f"the key has access to {', '.join(access)}, not to reports",
                "ask Shadowserver to give the key access to the reports API",
            )
        else:
            yield ok("api", "the key is active" + (f", access: {', '.join(access)}" if access else ""))

    def _subscriptions(self, client: ShadowserverClient, settings: Settings) -> Iterator[Verdict]:
        try:
            subscribed = client.subscribed()
        except IngestorError as exc:
            yield fail("api", f"reports/subscribed: {first_line(exc)}")
            return
        if not subscribed:
            yield fail(
                "api",
                "the key is subscribed to no report list: every listing will be empty",
                "ask Shadowserver support to associate the key with your organisation",
            )
            return
        unknown = sorted(set(settings.subscriptions) - set(subscribed))
        if unknown:
            yield fail(
                "api",
                f"SS_REPORTS names {', '.join(unknown)}, which the key is not subscribed to",
                f"use some of: {', '.join(subscribed)} (or leave SS_REPORTS empty for all)",
            )
        else:
            yield ok("api", f"subscribed to {', '.join(subscribed)}")

    # ---- the embedded server --------------------------------------------------------------------

    def embedded(self, settings: Settings) -> Iterator[Verdict]:
        if not settings.uses_embedded_db:
            return
        from ingestor.db.connect import NO_DATABASE, embedded_server_config
        from ingestor.db.embedded import PG_USER, find_pg_bindir
        from ingestor.db.lease import running_state
        from ingestor.errors import EmbeddedPostgresError

        config = embedded_server_config(settings)
        try:
            bindir = find_pg_bindir()
        except EmbeddedPostgresError as exc:
            yield fail("embedded", NO_DATABASE if not os.environ.get("PG_BINDIR") else first_line(exc))
            return
        major = _binaries_major(bindir)
        data_dir = config.data_dir
        if not (data_dir / "PG_VERSION").is_file():
            parent = next((p for p in [data_dir, *data_dir.parents] if p.exists()), Path("/"))
            if os.access(parent, os.W_OK):
                yield ok(
                    "embedded", f"{data_dir} does not exist yet: the first command creates it (PostgreSQL {major})"
                )
            else:
                yield fail(
                    "embedded",
                    f"{data_dir} does not exist and {parent} is not writable by this user",
                    "set EMBEDDED_DB_DIR to a directory this user may create",
                )
            return
        found = (data_dir / "PG_VERSION").read_text(encoding="utf-8").strip()
        if major and found != major:
            yield fail(
                "embedded",
                f"{data_dir} holds a PostgreSQL {found} cluster, the binaries are PostgreSQL {major}",
                f"point PG_BINDIR at PostgreSQL {found}'s binaries, or choose another EMBEDDED_DB_DIR",
            )
            return
        owner = data_dir.stat().st_uid
        expected: set[int] = {os.geteuid(), *([_uid_of(PG_USER)] if os.geteuid() == 0 else [])}
        if owner not in expected:
            yield fail(
                "embedded",
                f"{data_dir} belongs to uid {owner}, not to this user (uid {os.geteuid()})",
                "run the ingestor as the user that created it, or choose another EMBEDDED_DB_DIR",
            )
            return
        state = running_state(data_dir)
        running = f"running (supervisor pid {state.pid})" if state else "not running (it starts on demand)"
        yield ok("embedded", f"{data_dir}: PostgreSQL {found}, {running}")
        if config.listen_host and state is None:
            yield from _port_free("embedded", config.listen_host, config.port, "EMBEDDED_DB_LISTEN")

    # ---- the database ---------------------------------------------------------------------------

    def database(self, settings: Settings) -> Iterator[Verdict]:
        from ingestor.db.connect import Database
        from ingestor.db.migrate import available_migrations, pending_migrations

        try:
            db = Database.from_settings(settings)
        except IngestorError as exc:
            yield fail("database", first_line(exc), "see the README's table of common errors")
            return
        try:
            with db.connect() as conn:
                conn.execute("SET default_transaction_read_only = on")
                with conn.cursor(row_factory=dict_row) as cursor:
                    facts = cursor.execute(QUERIES["doctor_database"], {"viewer": settings.viewer_role}).fetchone()
                assert facts is not None
                yield from _version(db.display, facts)
                try:
                    pending = pending_migrations(conn)
                except IngestorError as exc:
                    yield fail("database", first_line(exc))
                    return
                yield from _privileges(facts, pending_count=len(pending))
                newest = available_migrations()[-1].label
                if not pending:
                    yield ok("database", f"the schema is current ({newest})")
                elif not facts["has_events"]:
                    yield warn(
                        "database", "no schema yet", "run `shadowserver-ingestor migrate` (or any ingesting command)"
                    )
                else:
                    yield warn(
                        "database",
                        f"{len(pending)} migration(s) to apply, up to {newest}",
                        "run `shadowserver-ingestor migrate` (the service and the ingesting commands do it too)",
                    )
                yield from _viewer(facts, settings)
        except IngestorError as exc:
            yield fail("database", first_line(exc), "check DB_HOST/DATABASE_URL, the server, the role's password")
        except psycopg.Error as exc:
            yield fail("database", f"{db.display}: {redact(first_line(exc))}")
        finally:
            db.close()

    # ---- disk and ports -------------------------------------------------------------------------

    def disk(self, settings: Settings) -> Iterator[Verdict]:
        work = settings.work_dir or Path(os.environ.get("TMPDIR") or "/tmp")
        yield from _free("disk", work, settings.min_free_disk, "SS_WORK_DIR (downloads are spooled there)")
        if settings.uses_embedded_db:
            from ingestor.db.connect import embedded_server_config

            data_dir = embedded_server_config(settings).data_dir
            yield from _free("disk", data_dir, 2 * settings.min_free_disk, "the embedded database")

    def health_port(self, settings: Settings) -> Iterator[Verdict]:
        yield from _port_free("health", settings.health_host, settings.health_port, "HEALTH_PORT", probe=True)


def _binaries_major(bindir: Path) -> str:
    from ingestor.db.embedded import major_version

    try:
        return major_version(bindir)
    except IngestorError:
        return ""


def _uid_of(user: str) -> int:
    import pwd

    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return -1


def _version(display: str, facts: dict[str, Any]) -> Iterator[Verdict]:
    major = int(facts["version_num"]) // 10000
    where = f"{display}: PostgreSQL {facts['version']}, database {facts['database']} as {facts['role']}"
    if major in SUPPORTED_MAJORS:
        yield ok("database", where)
    elif major < SUPPORTED_MAJORS.start:
        yield fail("database", f"{where}: older than 15", "upgrade PostgreSQL to 15 or later (15 to 18 are tested)")
    else:
        yield warn("database", f"{where}: newer than the tested 15 to 18", "run the test suite against it first")


def _privileges(facts: dict[str, Any], *, pending_count: int) -> Iterator[Verdict]:
    role = facts["role"]
    problems: list[str] = []
    if pending_count and not facts["can_create"]:
        problems.append("cannot create tables in the schema (migrations need it)")
    if facts["has_events"] and facts["can_insert"] is False:
        problems.append("cannot insert into ss_events")
    if not facts["can_temp"]:
        problems.append("cannot create temporary tables (the loader stages keys in one)")
    if problems:
        yield fail(
            "database",
            f"role {role} " + "; ".join(problems),
            f"as the database owner: GRANT CONNECT, TEMPORARY ON DATABASE {facts['database']} TO {role};"
            f" GRANT CREATE, USAGE ON SCHEMA public TO {role}; (see the README, Database setup)",
        )
    else:
        yield ok("database", f"role {role} may create, load and stage what the ingestor needs")


def _viewer(facts: dict[str, Any], settings: Settings) -> Iterator[Verdict]:
    role = settings.viewer_role
    if not facts["viewer_exists"]:
        yield warn(
            "viewer",
            f"the read-only role {role} (VIEWER_ROLE) does not exist: IRIS Data Explorer has no role to log in as",
            f"CREATE ROLE {role} LOGIN PASSWORD '...'; then run `shadowserver-ingestor migrate` to grant it",
        )
    elif not facts["viewer_can_login"]:
        yield warn("viewer", f"{role} exists but may not log in", f"ALTER ROLE {role} LOGIN PASSWORD '...';")
    elif facts["viewer_can_read"] is False:
        yield fail(
            "viewer",
            f"{role} cannot read ss_events and ss_ingestion_log",
            "run `shadowserver-ingestor migrate`, which grants it SELECT on every ss_* table",
        )
    else:
        yield ok("viewer", f"{role} may log in and read the ss_* tables")


def _free(area: str, path: Path, needed: int, what: str) -> Iterator[Verdict]:
    existing = next((p for p in [path, *path.parents] if p.exists()), Path("/"))
    try:
        free = shutil.disk_usage(existing).free
    except OSError as exc:
        yield warn(area, f"cannot tell the free space of {existing}: {exc.strerror or exc}")
        return
    text = f"{existing}: {free / (1 << 30):.1f} GiB free for {what}"
    if free < needed:
        yield fail(area, text + f", less than {needed / (1 << 20):.0f} MiB", "free some space, or move it elsewhere")
    else:
        yield ok(area, text)


def _port_free(area: str, host: str, port: int, setting: str, *, probe: bool = False) -> Iterator[Verdict]:
    if port == 0:
        yield ok(area, f"{setting}=0: any free port")
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                yield fail(
                    area, f"cannot listen on {host}:{port} ({setting}): {exc.strerror}", f"choose another {setting}"
                )
                return
        else:
            yield ok(area, f"{host}:{port} ({setting}) is free")
            return
    if probe and _is_our_service(port):
        yield ok(area, f"port {port} ({setting}) is taken by a running ingestor service (its /livez answers)")
        return
    yield fail(area, f"port in use: {host}:{port} ({setting}) is held by another program", f"choose another {setting}")


def _is_our_service(port: int) -> bool:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/livez", timeout=3)
    except httpx.HTTPError:
        return False
    return str(response.headers.get("server", "")).startswith("shadowserver-ingestor")
