"""Configuration from the environment, a ``.env`` file and Docker-style ``*_FILE`` secrets.

The variable names and defaults of v1.0.0 keep working (``SS_API_KEY``, ``DB_HOST``, ``BACKFILL_DAYS``,
...). Precedence: the process environment, then ``.env`` in the working directory. For each secret ``X``
a variable ``X_FILE`` may name a file holding it instead. Every problem is collected and reported at
once as a :class:`~ingestor.errors.ConfigError`, before anything runs. Secrets are ``SecretStr``: they
never appear in ``repr``, logs or error messages.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import (
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from ingestor.catalog import TYPE_NAME
from ingestor.errors import ConfigError

SECRET_VARIABLES = ("SS_API_KEY", "SS_API_SECRET", "DB_PASSWORD", "DATABASE_URL", "VIEWER_PASSWORD", "SMTP_PASSWORD")
"""Variables that may be given as ``<NAME>_FILE`` (Docker secrets)."""

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

CsvList = Annotated[list[str], Field(default_factory=list)]

SIMULATOR_KEY = "demo-key"
"""The key the simulator accepts unless told otherwise (``simulate --api-key``)."""

DEFAULT_LISTEN_HOST = "127.0.0.1"
DEFAULT_LISTEN_PORT = 5432
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "*"})
"""EMBEDDED_DB_LISTEN addresses that accept connections from other machines (allowed, warned about)."""


def parse_listen(value: str) -> tuple[str, int]:
    """``EMBEDDED_DB_LISTEN`` as (host, port): ``127.0.0.1:5432``, ``[::1]:5433``, ``0.0.0.0``, ``5433``
    (a port alone listens on loopback), ``localhost``; raise ValueError otherwise."""
    text = value.strip()
    host, port = text, str(DEFAULT_LISTEN_PORT)
    if text.isdigit():
        host, port = DEFAULT_LISTEN_HOST, text
    elif text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{value!r} is not [address]:port")
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{value!r}: the port must be 1-65535")
    if host not in WILDCARD_HOSTS and host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{value!r}: give an IP address (or localhost), optionally with :port") from None
    return host, int(port)


MAX_RESOLVE_DAYS = 366


def parse_resolve_days(value: str) -> tuple[int, dict[str, int]]:
    """``3`` or ``3,scan_ssl=5,event4_sinkhole=7``: full report days of absence after which a finding is
    resolved, by default and per report type; raise ValueError otherwise."""
    default: int | None = None
    per_type: dict[str, int] = {}
    for part in (item.strip() for item in value.split(",")):
        name, equals, number = part.rpartition("=")
        if not number.strip().isdigit() or not 1 <= int(number) <= MAX_RESOLVE_DAYS:
            raise ValueError(f"{part!r}: give a number of days from 1 to {MAX_RESOLVE_DAYS}, or type=days")
        if not equals:
            if default is not None:
                raise ValueError("more than one default number of days")
            default = int(number)
        elif not TYPE_NAME.match(name.strip()):
            raise ValueError(f"{name.strip()!r} is not a report type name")
        else:
            per_type[name.strip()] = int(number)
    return (3 if default is None else default), per_type


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseModel):
    """All settings, named after their environment variables (see the README's configuration table)."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    # Shadowserver API
    api_url: str = Field("https://transform.shadowserver.org/api2/", alias="SS_API_URL")
    download_url: str = Field("https://dl.shadowserver.org/", alias="SS_DOWNLOAD_URL")
    api_key: SecretStr = Field(SecretStr(""), alias="SS_API_KEY")
    api_secret: SecretStr = Field(SecretStr(""), alias="SS_API_SECRET")
    report_types: CsvList = Field(alias="SS_REPORT_TYPES")
    excluded_types: CsvList = Field(alias="SS_EXCLUDE_TYPES")
    delta_types: CsvList = Field(alias="SS_DELTA_TYPES")
    subscriptions: CsvList = Field(alias="SS_REPORTS")
    lookback_days: int = Field(2, ge=0, le=3650, alias="SS_LOOKBACK_DAYS")
    list_limit: int = Field(1000, ge=1, le=1_000_000, alias="SS_LIST_LIMIT")
    api_timeout: float = Field(120.0, gt=0, le=86400, alias="SS_API_TIMEOUT")
    download_timeout: float = Field(300.0, gt=0, le=86400, alias="SS_DOWNLOAD_TIMEOUT")
    max_retries: int = Field(4, ge=0, le=20, alias="SS_MAX_RETRIES")
    max_file_attempts: int = Field(10, ge=1, le=1_000_000, alias="SS_MAX_FILE_ATTEMPTS")
    request_delay: float = Field(1.0, ge=0, le=3600, alias="REQUEST_DELAY_SECONDS")
    work_dir: Path | None = Field(None, alias="SS_WORK_DIR")
    download_deadline: float = Field(3600.0, ge=0, le=7 * 86400, alias="SS_DOWNLOAD_DEADLINE")
    download_min_speed: ByteSize = Field(ByteSize(16 * 1024), ge=0, alias="SS_DOWNLOAD_MIN_SPEED")
    max_file_size: ByteSize = Field(ByteSize(4 << 30), gt=0, alias="SS_MAX_FILE_SIZE")
    max_compression_ratio: float = Field(100.0, ge=1, le=1_000_000, alias="SS_MAX_COMPRESSION_RATIO")
    min_free_disk: ByteSize = Field(ByteSize(512 << 20), ge=0, alias="SS_MIN_FREE_DISK")
    data_dir: Path | None = Field(None, alias="SS_DATA_DIR")

    # Database
    database_url: SecretStr | None = Field(None, alias="DATABASE_URL")
    db_host: str | None = Field(None, alias="DB_HOST")
    db_port: int = Field(5432, ge=1, le=65535, alias="DB_PORT")
    db_name: str = Field("shadowserver_db", min_length=1, alias="DB_NAME")
    db_user: str = Field("shadowserver_ingestor", min_length=1, alias="DB_USER")
    db_password: SecretStr = Field(SecretStr(""), alias="DB_PASSWORD")
    db_sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = Field(
        "prefer", alias="DB_SSLMODE"
    )
    db_connect_timeout: int = Field(10, ge=1, le=3600, alias="DB_CONNECT_TIMEOUT")
    db_lock_timeout: float = Field(60.0, ge=0, le=86_400, alias="DB_LOCK_TIMEOUT")
    db_statement_timeout: float = Field(1800.0, ge=0, le=86_400, alias="DB_STATEMENT_TIMEOUT")
    embedded_db_dir: Path | None = Field(None, alias="EMBEDDED_DB_DIR")
    embedded_db_listen: str | None = Field(None, alias="EMBEDDED_DB_LISTEN")
    viewer_role: str = Field("shadowserver_viewer", alias="VIEWER_ROLE")
    viewer_password: SecretStr = Field(SecretStr(""), alias="VIEWER_PASSWORD")
    batch_rows: int = Field(5_000, ge=100, le=1_000_000, alias="INGEST_BATCH_ROWS")
    workers: int = Field(default_factory=lambda: min(4, os.cpu_count() or 1), ge=1, le=32, alias="INGEST_WORKERS")
    events_partition: Literal["month", "week", "day"] = Field("month", alias="EVENTS_PARTITION")
    events_oldest_date: date = Field(date(2010, 1, 1), alias="EVENTS_OLDEST_DATE")
    retention_days: int = Field(0, ge=0, le=36500, alias="RETENTION_DAYS")
    retention_batch_rows: int = Field(10_000, ge=100, le=1_000_000, alias="RETENTION_BATCH_ROWS")
    ledger_retention_days: int = Field(0, ge=0, le=36500, alias="LEDGER_RETENTION_DAYS")
    audit_retention_days: int = Field(0, ge=0, le=36500, alias="AUDIT_RETENTION_DAYS")

    # Service
    interval_minutes: float = Field(15.0, gt=0, le=525_600, alias="INGEST_INTERVAL_MINUTES")
    jitter_seconds: float = Field(30.0, ge=0, le=86400, alias="INGEST_JITTER_SECONDS")
    backfill_days: int = Field(7, ge=0, le=3650, alias="BACKFILL_DAYS")
    health_host: str = Field("0.0.0.0", alias="HEALTH_HOST")
    health_port: int = Field(8088, ge=0, le=65535, alias="HEALTH_PORT")
    health_max_age_factor: float = Field(3.0, gt=1, le=1000, alias="HEALTH_MAX_AGE_FACTOR")
    health_failed_cycles: int = Field(3, ge=1, le=1_000_000, alias="HEALTH_FAILED_CYCLES")
    stop_timeout: float = Field(8.0, gt=0, le=3600, alias="STOP_TIMEOUT_SECONDS")

    # Findings and the feed's alarms (docs/findings.md)
    resolve_days: str = Field("3", alias="FINDINGS_RESOLVE_DAYS")
    alarm_missing_type_days: int = Field(5, ge=0, le=7, alias="ALARM_MISSING_TYPE_DAYS")
    alarm_empty_cycles: int = Field(4, ge=0, le=1_000_000, alias="ALARM_EMPTY_CYCLES")
    # Notification digests (docs/notifications.md)
    notify_enabled: bool = Field(False, alias="NOTIFY_ENABLED")
    smtp_host: str | None = Field(None, alias="SMTP_HOST")
    smtp_port: int | None = Field(None, ge=1, le=65535, alias="SMTP_PORT")
    smtp_security: Literal["starttls", "tls", "none"] = Field("starttls", alias="SMTP_SECURITY")
    smtp_user: str | None = Field(None, alias="SMTP_USER")
    smtp_password: SecretStr = Field(SecretStr(""), alias="SMTP_PASSWORD")
    smtp_timeout: float = Field(60.0, gt=0, le=3600, alias="SMTP_TIMEOUT")
    notify_from: str | None = Field(None, alias="NOTIFY_FROM")
    notify_reply_to: str | None = Field(None, alias="NOTIFY_REPLY_TO")
    notify_bcc: str | None = Field(None, alias="NOTIFY_BCC")
    notify_template_dir: Path | None = Field(None, alias="NOTIFY_TEMPLATE_DIR")
    notify_ticket_prefix: str = Field("SSI", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,19}$", alias="NOTIFY_TICKET_PREFIX")
    notify_lookback_days: int = Field(7, ge=1, le=3650, alias="NOTIFY_LOOKBACK_DAYS")
    notify_suppress_hours: int = Field(168, ge=0, le=87_840, alias="NOTIFY_SUPPRESS_HOURS")
    notify_max_attachment: ByteSize = Field(ByteSize(5 << 20), ge=1024, alias="NOTIFY_MAX_ATTACHMENT")
    notify_oversize: Literal["zip", "truncate"] = Field("zip", alias="NOTIFY_OVERSIZE")

    # Logging
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", alias="LOG_LEVEL")
    log_format: Literal["auto", "text", "json"] = Field("auto", alias="LOG_FORMAT")

    @field_validator("report_types", "excluded_types", "delta_types", "subscriptions", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("report_types", "excluded_types")
    @classmethod
    def _type_names(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not TYPE_NAME.match(name)]
        if bad:
            raise ValueError(f"not report type names: {', '.join(bad)}")
        return value

    @field_validator("delta_types")
    @classmethod
    def _delta_types(cls, value: list[str]) -> list[str]:
        if "all" in value and len(value) > 1:
            raise ValueError("either 'all' or report type names, not both")
        bad = [name for name in value if name != "all" and not TYPE_NAME.match(name)]
        if bad:
            raise ValueError(f"not report type names: {', '.join(bad)}")
        return value

    @field_validator("resolve_days")
    @classmethod
    def _resolve_days(cls, value: str) -> str:
        parse_resolve_days(value)
        return value

    @field_validator("api_url", "download_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value if value.endswith("/") else value + "/"

    @field_validator("viewer_role")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError("must be a plain PostgreSQL role name (letters, digits, underscore)")
        return value

    @field_validator("embedded_db_listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        host, port = parse_listen(value)
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _libpq_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value():
            try:
                conninfo_to_dict(value.get_secret_value())
            except Exception:
                raise ValueError("is not a valid libpq connection string or URL") from None
        return value

    @model_validator(mode="after")
    def _ledger_outlives_events(self) -> Settings:
        if self.ledger_retention_days and self.ledger_retention_days < self.retention_days:
            raise ValueError(
                "LEDGER_RETENTION_DAYS must be 0 (keep) or at least RETENTION_DAYS: the ledger is what stops "
                "pruned files from being downloaded and loaded again"
            )
        return self

    @model_validator(mode="after")
    def _listener_needs_a_password(self) -> Settings:
        if self.embedded_db_listen and self.uses_embedded_db and not self.viewer_password.get_secret_value():
            raise ValueError(
                "EMBEDDED_DB_LISTEN needs VIEWER_PASSWORD (or VIEWER_PASSWORD_FILE): over TCP the viewer logs in "
                "with a password, never without one"
            )
        return self

    @model_validator(mode="after")
    def _notify_needs_a_server(self) -> Settings:
        if self.notify_enabled and not (self.smtp_host and self.notify_from):
            raise ValueError("NOTIFY_ENABLED needs SMTP_HOST and NOTIFY_FROM (where to send digests, and from whom)")
        return self

    # ---- derived values -------------------------------------------------------------------------

    @property
    def uses_embedded_db(self) -> bool:
        """True when neither ``DATABASE_URL`` nor ``DB_HOST`` names a server."""
        return not (self.database_url and self.database_url.get_secret_value()) and not self.db_host

    @property
    def api_is_local(self) -> bool:
        """Whether the API is a simulator, not Shadowserver: on this machine, the compose stack's
        ``simulator`` service, or called with the simulator's own demo key."""
        host = (urlsplit(self.api_url).hostname or "").lower()
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host in ("localhost", "simulator")
        return loopback or self.api_key.get_secret_value() == SIMULATOR_KEY

    @property
    def embedded_listen(self) -> tuple[str, int] | None:
        """``EMBEDDED_DB_LISTEN`` as (host, port), or None when the embedded server listens on its socket only."""
        return parse_listen(self.embedded_db_listen) if self.embedded_db_listen else None

    def database_conninfo(self) -> str:
        """The libpq connection string of the external database (secret: contains the password)."""
        if self.database_url and self.database_url.get_secret_value():
            return self.database_url.get_secret_value()
        return make_conninfo(
            host=self.db_host or "",
            port=self.db_port,
            dbname=self.db_name,
            user=self.db_user,
            password=self.db_password.get_secret_value() or None,
            sslmode=self.db_sslmode,
            connect_timeout=self.db_connect_timeout,
        )

    def session_settings(self) -> dict[str, str]:
        """PostgreSQL settings of every session the ingestor opens: bounded waits (0 = no bound), and a check
        that lets the server abandon a statement whose client has gone."""
        return {
            "lock_timeout": f"{round(self.db_lock_timeout * 1000)}ms",
            "statement_timeout": f"{round(self.db_statement_timeout * 1000)}ms",
            "idle_in_transaction_session_timeout": f"{round(self.db_statement_timeout * 1000)}ms",
            "client_connection_check_interval": "2s",
        }

    def oldest_report_date(self, today: date | None = None) -> date:
        """The oldest report date loaded: EVENTS_OLDEST_DATE, or the retention's cutoff when that is later
        (an older file would be pruned at once)."""
        today = today or datetime.now(UTC).date()
        if self.retention_days:
            return max(self.events_oldest_date, today - timedelta(days=self.retention_days))
        return self.events_oldest_date

    def resolve_after(self) -> tuple[int, dict[str, int]]:
        """``FINDINGS_RESOLVE_DAYS`` as (the default, {report type: its own})."""
        return parse_resolve_days(self.resolve_days)

    @property
    def interval(self) -> timedelta:
        return timedelta(minutes=self.interval_minutes)

    def secrets(self) -> list[str]:
        """Secret values, for the log redaction filter."""
        values = [self.api_key.get_secret_value(), self.api_secret.get_secret_value()]
        values.append(self.db_password.get_secret_value())
        values.append(self.viewer_password.get_secret_value())
        values.append(self.smtp_password.get_secret_value())
        if self.database_url:
            password = conninfo_to_dict(self.database_url.get_secret_value()).get("password")
            values.append(str(password or ""))
        return [value for value in values if len(value) >= 4]


def _resolve_secret_files(values: dict[str, str], problems: list[str]) -> None:
    for name in SECRET_VARIABLES:
        file_variable = f"{name}_FILE"
        path = values.pop(file_variable, None)
        if not path:
            continue
        if values.get(name):
            problems.append(f"{file_variable}: set either {name} or {file_variable}, not both")
            continue
        try:
            values[name] = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            problems.append(f"{file_variable}: cannot read {path}: {exc.strerror or exc}")


def _describe(error: Mapping[str, Any]) -> str:
    location = ".".join(str(part) for part in error.get("loc", ())) or "settings"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if location in SECRET_VARIABLES or "input" not in error or isinstance(error["input"], dict):
        return f"{location}: {message}"
    return f"{location}: {message} (got {error['input']!r})"


PLACEHOLDER = re.compile(r"^\s*<[^<>]*>\s*$")
"""What ``.env.example`` puts where a value of yours belongs: ``<your-shadowserver-api-key>``."""


def _placeholders(data: Mapping[str, Any]) -> list[str]:
    """One problem per setting still holding an unreplaced ``<placeholder>`` (from a copied .env.example)."""
    known = {field.alias for field in Settings.model_fields.values() if field.alias}
    return [
        f"{name} is still the placeholder {value.strip()} (from .env.example?):"
        " replace it with your value, or remove it"
        for name, value in data.items()
        if name in known and isinstance(value, str) and PLACEHOLDER.match(value)
    ]


def load_settings(
    environ: Mapping[str, str] | None = None,
    env_file: Path | None = Path(".env"),
    *,
    require_api: bool = False,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read the settings; raise :class:`ConfigError` listing every problem at once.

    ``overrides`` are values given on the command line, keyed by variable name; they win over the
    environment. With ``require_api`` a missing API key or secret is a problem too.
    """
    values: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ if environ is None else environ)
    problems: list[str] = []
    _resolve_secret_files(values, problems)
    data: dict[str, Any] = {key: value for key, value in values.items() if value != "" or key in SECRET_VARIABLES}
    data.update({key: value for key, value in (overrides or {}).items() if value is not None})
    problems.extend(_placeholders(data))
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems.extend(_describe(error) for error in exc.errors())
    if require_api:
        problems.extend(
            f"{name}: must be set (or {name}_FILE)" for name in ("SS_API_KEY", "SS_API_SECRET") if not data.get(name)
        )
    if problems or settings is None:
        raise ConfigError(problems)
    return settings
