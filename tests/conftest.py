"""Shared fixtures: a real PostgreSQL server (tests/fixtures/pg.py), the Shadowserver simulator
(tests/fixtures/sim.py) and ``run`` processes (tests/fixtures/service.py). Environment variables that
configure the ingestor are cleared for every test so that a developer's shell cannot leak into the suite.
``PG_MAJOR=15|16|17|18`` runs the suite on that PostgreSQL major (tests/fixtures/pgdist.py fetches it once)."""

from __future__ import annotations

import pytest

from fixtures.harness import *  # noqa: F403
from fixtures.pg import *  # noqa: F403
from fixtures.pg import TEST_DATABASE_URL, describe_server
from fixtures.pgdist import PgDistError, use_requested_major
from fixtures.service import *  # noqa: F403
from fixtures.sim import *  # noqa: F403
from fixtures.smtp import *  # noqa: F403


def pytest_configure(config: pytest.Config) -> None:
    """Resolve PG_MAJOR before any test (or child process) looks for a server."""
    try:
        use_requested_major()
    except PgDistError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_report_header(config: pytest.Config) -> str:
    return "PostgreSQL: " + ("TEST_DATABASE_URL" if TEST_DATABASE_URL else describe_server())
