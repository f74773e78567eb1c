"""Configuration: v1.0.0's variables, .env, *_FILE secrets, every problem reported at once, no leaks."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingestor.config import load_settings, parse_listen
from ingestor.errors import ConfigError


def test_defaults_match_v1_and_no_database_means_embedded(tmp_path: Path) -> None:
    settings = load_settings({}, env_file=None)
    assert settings.api_url == "https://transform.shadowserver.org/api2/"
    assert settings.download_url == "https://dl.shadowserver.org/"
    assert (
        settings.interval_minutes,
        settings.backfill_days,
        settings.request_delay,
        settings.health_port,
    ) == (15, 7, 1.0, 8088)
    assert (settings.db_port, settings.db_name, settings.db_user) == (
        5432,
        "shadowserver_db",
        "shadowserver_ingestor",
    )
    assert settings.uses_embedded_db


def test_db_parts_build_a_conninfo_and_database_url_wins() -> None:
    settings = load_settings(
        {"DB_HOST": "pg.internal", "DB_PASSWORD": "s3cr3t!", "DB_SSLMODE": "require"}, env_file=None
    )
    assert not settings.uses_embedded_db
    conninfo = settings.database_conninfo()
    assert "host=pg.internal" in conninfo and "sslmode=require" in conninfo and "password=s3cr3t!" in conninfo
    url = load_settings({"DB_HOST": "x", "DATABASE_URL": "postgresql://u@other/db"}, env_file=None)
    assert url.database_conninfo() == "postgresql://u@other/db"


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("SS_API_KEY=from-file\nBACKFILL_DAYS=3\nSS_REPORT_TYPES=scan_ssl, device_id\n")
    settings = load_settings({"BACKFILL_DAYS": "5"}, env_file=env_file)
    assert settings.api_key.get_secret_value() == "from-file"
    assert settings.backfill_days == 5
    assert settings.report_types == ["scan_ssl", "device_id"]


def test_secret_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("very-secret-value\n")
    settings = load_settings({"SS_API_SECRET_FILE": str(secret), "SS_API_KEY": "k"}, env_file=None, require_api=True)
    assert settings.api_secret.get_secret_value() == "very-secret-value"


def test_all_problems_are_reported_together_without_secret_values(tmp_path: Path) -> None:
    environ = {
        "DB_PORT": "not-a-port",
        "BACKFILL_DAYS": "-1",
        "SS_API_URL": "ftp://example",
        "SS_API_SECRET_FILE": str(tmp_path / "missing"),
        "DB_PASSWORD": "hunter2-password",
        "DB_PASSWORD_FILE": str(tmp_path / "also-missing"),
        "SS_REPORT_TYPES": "scan_ssl,Bad-Name",
        "LOG_FORMAT": "xml",
    }
    with pytest.raises(ConfigError) as info:
        load_settings(environ, env_file=None, require_api=True)
    text = str(info.value)
    for name in (
        "DB_PORT",
        "BACKFILL_DAYS",
        "SS_API_URL",
        "SS_API_SECRET_FILE",
        "DB_PASSWORD_FILE",
        "SS_REPORT_TYPES",
        "LOG_FORMAT",
        "SS_API_KEY",
    ):
        assert name in text, name
    assert "hunter2" not in text


def test_missing_credentials_are_only_a_problem_when_the_api_is_needed() -> None:
    load_settings({}, env_file=None)
    with pytest.raises(ConfigError, match="SS_API_KEY: must be set"):
        load_settings({}, env_file=None, require_api=True)


def test_secrets_never_appear_in_repr() -> None:
    settings = load_settings(
        {
            "SS_API_KEY": "key-123456",
            "SS_API_SECRET": "secret-abcdef",
            "DATABASE_URL": "postgresql://u:pw-xyz1@h/d",
        },
        env_file=None,
    )
    text = repr(settings) + str(settings)
    for value in ("key-123456", "secret-abcdef", "pw-xyz1"):
        assert value not in text
    assert {"key-123456", "secret-abcdef", "pw-xyz1"} <= set(settings.secrets())


def test_overrides_win_and_empty_values_mean_unset() -> None:
    settings = load_settings({"DB_HOST": "", "SS_LOOKBACK_DAYS": "1"}, env_file=None, overrides={"SS_LOOKBACK_DAYS": 4})
    assert settings.uses_embedded_db
    assert settings.lookback_days == 4


def test_base_urls_get_a_trailing_slash() -> None:
    settings = load_settings({"SS_API_URL": "http://127.0.0.1:9/api2", "SS_DOWNLOAD_URL": "http://h/dl"}, env_file=None)
    assert settings.api_url == "http://127.0.0.1:9/api2/" and settings.download_url == "http://h/dl/"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:5433", ("127.0.0.1", 5433)),
        ("127.0.0.1", ("127.0.0.1", 5432)),
        ("5433", ("127.0.0.1", 5433)),  # a port alone: loopback
        ("[::1]:6000", ("::1", 6000)),
        ("::1", ("::1", 5432)),
        ("0.0.0.0", ("0.0.0.0", 5432)),
        ("localhost:5444", ("localhost", 5444)),
    ],
)
def test_embedded_db_listen_forms(value: str, expected: tuple[str, int]) -> None:
    settings = load_settings({"EMBEDDED_DB_LISTEN": value, "VIEWER_PASSWORD": "pw-1234"}, env_file=None)
    assert settings.embedded_listen == expected
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["db.example.com", "127.0.0.1:0", "127.0.0.1:70000", "[::1]5432", "x:y"])
def test_embedded_db_listen_rejects_what_it_cannot_bind(value: str) -> None:
    with pytest.raises(ConfigError, match="EMBEDDED_DB_LISTEN"):
        load_settings({"EMBEDDED_DB_LISTEN": value, "VIEWER_PASSWORD": "pw-1234"}, env_file=None)


def test_the_viewer_password_is_a_secret() -> None:
    settings = load_settings({"VIEWER_PASSWORD": "viewer-pw-42"}, env_file=None)
    assert "viewer-pw-42" not in repr(settings) and "viewer-pw-42" in settings.secrets()
    assert settings.embedded_listen is None


def test_a_copied_env_example_is_refused_naming_each_placeholder(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("SS_API_KEY=<your-shadowserver-api-key>\nSS_API_SECRET=real-secret\nDB_NAME=shadowserver_db\n")
    with pytest.raises(ConfigError) as caught:
        load_settings({}, env_file=env_file)
    assert str(caught.value) == (
        "invalid configuration: SS_API_KEY is still the placeholder <your-shadowserver-api-key> (from .env.example?):"
        " replace it with your value, or remove it"
    )
    (secret := tmp_path / "secret").write_text("<choose-a-password-for-the-ingestor-role>\n")
    with pytest.raises(ConfigError, match="DB_PASSWORD is still the placeholder"):
        load_settings({"DB_PASSWORD_FILE": str(secret)}, env_file=None)
    assert load_settings({"SS_API_KEY": "<your-shadowserver-api-key>"}, env_file=None, overrides={"SS_API_KEY": "k"})
    assert load_settings({"SOMETHING_ELSE": "<not ours>", "SS_API_KEY": "a<b>c"}, env_file=None)


def test_a_simulator_is_told_apart_from_the_real_api() -> None:
    assert not load_settings({}, env_file=None).api_is_local
    for url in (
        "http://127.0.0.1:8080/api2/",
        "http://localhost:8080/api2/",
        "http://[::1]:80/",
        "http://simulator:8080/api2/",
    ):
        assert load_settings({"SS_API_URL": url}, env_file=None).api_is_local, url
    assert load_settings({"SS_API_KEY": "demo-key"}, env_file=None).api_is_local
