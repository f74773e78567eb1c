"""What every command needs: settings, logging, signal handling, the shutdown bound, the database and the
API client, opened in order and closed in reverse, with errors turned into one clear line and an exit
code.

The database is opened one of two ways. Commands that write (``migrate`` and the ingesting ones) bring the
schema up to date and grant the viewer role read access first. Read-only commands (``search``, ``status``,
``types``, ``new``) only check that the schema is this version's and run in read-only sessions
(``default_transaction_read_only``): they work under a role that may only SELECT, and cannot write even by
mistake."""

from __future__ import annotations

import functools
import logging
import signal
import sys
import threading
from collections.abc import Callable, Generator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, NoReturn, ParamSpec, TypeVar
from urllib.parse import urlsplit

import click
import psycopg

from ingestor import terminal
from ingestor.api.client import DownloadLimits, RetryPolicy, ShadowserverClient
from ingestor.catalog import configure_data_dir
from ingestor.cli.output import suggest
from ingestor.config import Settings, load_settings
from ingestor.db.connect import Database
from ingestor.db.embedded import default_data_dir
from ingestor.db.migrate import Migration, check_schema, migrate
from ingestor.errors import ConfigError, IngestorError
from ingestor.logs import configure_logging
from ingestor.redaction import REDACTOR, first_line, redact
from ingestor.service.watchdog import ShutdownWatchdog

log = logging.getLogger("ingestor.cli")

INTERRUPTED = threading.Event()
"""Set when SIGTERM or SIGINT reached a command: whatever it then ends with, its exit code is 130."""

READ_ONLY_SESSION = {"default_transaction_read_only": "on"}
"""Session settings of the read-only commands: any write fails with PostgreSQL's read-only error."""

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class Runtime:
    settings: Settings
    stop: threading.Event
    watchdog: ShutdownWatchdog
    db: Database | None = None
    client: ShadowserverClient | None = None
    migrated: list[Migration] = field(default_factory=list)
    """The migrations this command applied while opening the database."""

    def cancel_statements(self) -> None:
        """Cancel what this process runs on the database (called by the watchdog when a stop comes)."""
        if self.db is not None and (asked := self.db.cancel_active()):
            log.info("cancelled %d running database statement(s)", asked)

    def require_db(self) -> Database:
        assert self.db is not None
        return self.db

    def require_client(self) -> ShadowserverClient:
        assert self.client is not None
        return self.client


def make_client(settings: Settings, stop: threading.Event) -> ShadowserverClient:
    return ShadowserverClient(
        settings.api_url,
        settings.api_key.get_secret_value(),
        settings.api_secret.get_secret_value(),
        settings.download_url,
        api_timeout=settings.api_timeout,
        download_timeout=settings.download_timeout,
        retry=RetryPolicy(retries=settings.max_retries, stop=stop),
        limits=DownloadLimits.from_settings(settings),
    )


@contextmanager
def stop_on_signals(stop: threading.Event) -> Generator[None, None, None]:
    """SIGTERM/SIGINT request a clean stop; a second SIGINT interrupts at once."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        name = signal.Signals(signum).name
        INTERRUPTED.set()
        log.warning("%s received: finishing cleanly (the current file is abandoned and retried later)", name)
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def runtime(
    *,
    need_api: bool = False,
    need_db: bool = False,
    read_only: bool = False,
    overrides: Mapping[str, Any] | None = None,
    stop: threading.Event | None = None,
    service: bool = False,
    check: Callable[[Settings], None] | None = None,
) -> Generator[Runtime, None, None]:
    """Load settings (all problems at once), then open what the command needs.

    On a terminal the log shows warnings and errors only, unless ``-v`` or ``LOG_LEVEL`` asks for more; a
    ``service``'s log is its output and keeps ``LOG_LEVEL``. ``check`` validates the command's arguments
    against the settings before anything starts (it raises a usage error).

    With ``need_db`` the schema is migrated (and the viewer granted), or with ``read_only`` checked only:
    a schema behind or ahead of this version is then an error naming the fix, and every session of the
    command is read-only.
    """
    settings = load_settings(require_api=need_api, overrides=overrides)
    if need_api and (need_db or service):
        keep_simulated_data_apart(settings)
    if check is not None:
        check(settings)
    configure_logging(settings.log_level, settings.log_format, terminal_level=terminal_level(settings, service))
    REDACTOR.add(*settings.secrets())
    configure_data_dir(settings.data_dir)
    stop = stop or threading.Event()
    with stop_on_signals(stop):
        watchdog = ShutdownWatchdog(stop, settings.stop_timeout)
        rt = Runtime(settings, stop, watchdog)
        watchdog.on_stop = rt.cancel_statements
        watchdog.start()
        try:
            if need_db:
                rt.db = Database.from_settings(settings)
                if read_only:
                    rt.db.session.update(READ_ONLY_SESSION)  # before the first connection: the pool opens lazily
                with rt.db.connect() as conn:  # a direct connection: an unreachable server fails at once
                    if read_only:
                        check_schema(conn)
                    else:
                        rt.migrated = migrate(conn, settings.viewer_role)
            if need_api:
                rt.client = make_client(settings, stop)
            yield rt
        finally:
            if rt.client is not None:
                rt.client.close()
            if rt.db is not None:
                rt.db.close()
            watchdog.disarm()


def keep_simulated_data_apart(settings: Settings) -> None:
    """Refuse to load a simulator's reports into the default embedded database, where real data belongs.

    The simulator's rows (example.org, documentation addresses) would stay there, mixed with the real
    ones; an EMBEDDED_DB_DIR of its own (any explicit one) keeps them apart.
    """
    if settings.api_is_local and settings.uses_embedded_db and settings.embedded_db_dir is None:
        own = default_data_dir().parent / "simulator" / "pgdata"
        raise ConfigError(
            [
                f"SS_API_URL is a simulator ({urlsplit(settings.api_url).netloc}), and its reports would land in the"
                " default embedded"
                f" database ({default_data_dir()}), where your real data belongs: set EMBEDDED_DB_DIR to a directory"
                f" of its own, e.g. EMBEDDED_DB_DIR={own}"
            ]
        )


def terminal_level(settings: Settings, service: bool) -> str | None:
    """The log level shown on a terminal: WARNING for a command unless -v (INFO) or -vv (DEBUG), or
    ``LOG_LEVEL`` was set explicitly; None (= ``LOG_LEVEL``) for the service."""
    if service or "log_level" in settings.model_fields_set:
        return None
    return ("WARNING", "INFO")[terminal.verbosity()] if terminal.verbosity() < 2 else "DEBUG"


def handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn the ingestor's errors into one line on stderr and the error's exit code.

    A command that a signal interrupted exits 130, however it ended (a cancelled query, a request cut
    short, or simply done); the service exits 0 by itself after a clean stop.
    """

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        INTERRUPTED.clear()
        try:
            result = command(*args, **kwargs)
        except (IngestorError, psycopg.Error) as exc:
            if INTERRUPTED.is_set():
                click.echo("interrupted", err=True)
                sys.exit(130)
            _fail(exc)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        if INTERRUPTED.is_set():
            click.echo("interrupted", err=True)
            sys.exit(130)
        return result

    return wrapper


def _fail(exc: IngestorError | psycopg.Error) -> NoReturn:
    """One line for ``exc`` on stderr, then its exit code."""
    if isinstance(exc, IngestorError):
        click.echo(f"error: {suggest(redact(str(exc)))}", err=True)
        sys.exit(exc.exit_code)
    click.echo(
        f"error: database: {first_line(exc)}",
        err=True,
    )
    sys.exit(1)
