"""FINDINGS_RESOLVE_DAYS and SS_DELTA_TYPES, and the small helpers of trends."""

from __future__ import annotations

from datetime import date

import pytest

from ingestor.config import load_settings, parse_resolve_days
from ingestor.errors import ConfigError
from ingestor.lifecycle import FindingsPolicy
from ingestor.picture.trends import sparkline, weekly


def test_resolve_days_take_a_default_and_per_type_numbers() -> None:
    assert parse_resolve_days("3") == (3, {})
    assert parse_resolve_days("5, scan_ssl=2,event4_sinkhole=7") == (5, {"scan_ssl": 2, "event4_sinkhole": 7})
    assert parse_resolve_days("scan_ssl=2") == (3, {"scan_ssl": 2})
    policy = FindingsPolicy.from_settings(load_settings({"FINDINGS_RESOLVE_DAYS": "4,scan_rdp=1"}, env_file=None))
    assert policy.days_for("scan_rdp") == 1 and policy.days_for("scan_ssl") == 4


@pytest.mark.parametrize("value", ["0", "367", "x", "3,4", "Bad-Type=2", "scan_ssl=", ""])
def test_bad_resolve_days_are_a_configuration_error(value: str) -> None:
    with pytest.raises(ConfigError, match="FINDINGS_RESOLVE_DAYS"):
        load_settings({"FINDINGS_RESOLVE_DAYS": value or " "}, env_file=None)


def test_delta_types_are_delta_on_every_day_but_sunday() -> None:
    policy = FindingsPolicy.from_settings(load_settings({"SS_DELTA_TYPES": "scan_ssl"}, env_file=None))
    sunday, monday = date(2026, 11, 22), date(2026, 11, 23)
    assert not policy.is_delta("scan_ssl", sunday) and policy.is_delta("scan_ssl", monday)
    assert not policy.is_delta("scan_rdp", monday)
    every = FindingsPolicy.from_settings(load_settings({"SS_DELTA_TYPES": "all"}, env_file=None))
    assert every.is_delta("scan_rdp", monday) and not every.is_delta("scan_rdp", sunday)
    with pytest.raises(ConfigError, match="SS_DELTA_TYPES: either 'all' or report type names"):
        load_settings({"SS_DELTA_TYPES": "all,scan_ssl"}, env_file=None)
    with pytest.raises(ConfigError, match="SS_EXCLUDE_TYPES: not report type names: Scan-SSL"):
        load_settings({"SS_EXCLUDE_TYPES": "Scan-SSL"}, env_file=None)


def test_sparklines_and_weeks() -> None:
    assert sparkline([0, 1, 2, 4, 8]) == " ▁▂▄█"
    assert sparkline([0, 0]) == "  "
    assert weekly(list(range(10))) == [0 + 1 + 2, 3 + 4 + 5 + 6 + 7 + 8 + 9]
    assert weekly([1] * 14) == [7, 7]
