"""Configuration from the environment, a ``.env`` file and Docker-style ``*_FILE`` secrets.

The variable names and defaults of v1.0.0 keep working (``SS_API_KEY``, ``DB_HOST``, ``BACKFILL_DAYS``,
...). Precedence: the process environment, then ``.env`` in the working directory. For each secret ``X``
a variable ``X_FILE`` may name a file holding it instead. Every problem is collected and reported at
once as a :class:`~ingestor.errors.ConfigError`, before anything runs. Secrets are ``SecretStr``: they
never appear in ``repr``, logs or error messages.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from dotenv import dotenv_values
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from ingestor.errors import ConfigError

SECRET_VARIABLES = ("SS_API_KEY", "SS_API_SECRET", "DB_PASSWORD", "DATABASE_URL")
"""Variables that may be given as ``<NAME>_FILE`` (Docker secrets)."""

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_TYPE_NAME = re.compile(r"^[a-z0-9_]+$")

CsvList = Annotated[list[str], Field(default_factory=list)]


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseModel):
    """All settings, named after their environment variables (see the README's configuration table)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    # Shadowserver API
    api_url: str = Field("https://transform.shadowserver.org/api2/", alias="SS_API_URL")
    download_url: str = Field("https://dl.shadowserver.org/", alias="SS_DOWNLOAD_URL")
    api_key: SecretStr = Field(SecretStr(""), alias="SS_API_KEY")
    api_secret: SecretStr = Field(SecretStr(""), alias="SS_API_SECRET")
    report_types: CsvList = Field(alias="SS_REPORT_TYPES")
    subscriptions: CsvList = Field(alias="SS_REPORTS")
    lookback_days: int = Field(2, ge=0, le=3650, alias="SS_LOOKBACK_DAYS")
    list_limit: int = Field(1000, ge=1, alias="SS_LIST_LIMIT")
    api_timeout: float = Field(120.0, gt=0, alias="SS_API_TIMEOUT")
    download_timeout: float = Field(300.0, gt=0, alias="SS_DOWNLOAD_TIMEOUT")
    max_retries: int = Field(4, ge=0, le=20, alias="SS_MAX_RETRIES")
    max_file_attempts: int = Field(10, ge=1, alias="SS_MAX_FILE_ATTEMPTS")
    request_delay: float = Field(1.0, ge=0, alias="REQUEST_DELAY_SECONDS")
    work_dir: Path | None = Field(None, alias="SS_WORK_DIR")
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
    viewer_role: str = Field("shadowserver_viewer", alias="VIEWER_ROLE")
    batch_rows: int = Field(5_000, ge=100, le=1_000_000, alias="INGEST_BATCH_ROWS")
    retention_days: int = Field(0, ge=0, alias="RETENTION_DAYS")
    retention_batch_rows: int = Field(10_000, ge=100, le=1_000_000, alias="RETENTION_BATCH_ROWS")
    ledger_retention_days: int = Field(0, ge=0, alias="LEDGER_RETENTION_DAYS")
    audit_retention_days: int = Field(0, ge=0, alias="AUDIT_RETENTION_DAYS")

    # Service
    interval_minutes: float = Field(15.0, gt=0, alias="INGEST_INTERVAL_MINUTES")
    jitter_seconds: float = Field(30.0, ge=0, alias="INGEST_JITTER_SECONDS")
    backfill_days: int = Field(7, ge=0, le=3650, alias="BACKFILL_DAYS")
    health_host: str = Field("0.0.0.0", alias="HEALTH_HOST")
    health_port: int = Field(8088, ge=0, le=65535, alias="HEALTH_PORT")
    health_max_age_factor: float = Field(3.0, gt=1, alias="HEALTH_MAX_AGE_FACTOR")
    health_failed_cycles: int = Field(3, ge=1, alias="HEALTH_FAILED_CYCLES")
    stop_timeout: float = Field(8.0, gt=0, alias="STOP_TIMEOUT_SECONDS")

    # Logging
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", alias="LOG_LEVEL")
    log_format: Literal["auto", "text", "json"] = Field("auto", alias="LOG_FORMAT")

    @field_validator("report_types", "subscriptions", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("report_types")
    @classmethod
    def _type_names(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not _TYPE_NAME.match(name)]
        if bad:
            raise ValueError(f"not report type names: {', '.join(bad)}")
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

    # ---- derived values -------------------------------------------------------------------------

    @property
    def uses_embedded_db(self) -> bool:
        """True when neither ``DATABASE_URL`` nor ``DB_HOST`` names a server."""
        return not (self.database_url and self.database_url.get_secret_value()) and not self.db_host

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

    @property
    def interval(self) -> timedelta:
        return timedelta(minutes=self.interval_minutes)

    def secrets(self) -> list[str]:
        """Secret values, for the log redaction filter."""
        values = [self.api_key.get_secret_value(), self.api_secret.get_secret_value()]
        values.append(self.db_password.get_secret_value())
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
