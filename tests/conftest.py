"""Shared fixtures: a real PostgreSQL server (tests/fixtures/pg.py), the Shadowserver simulator
(tests/fixtures/sim.py) and ``run`` processes (tests/fixtures/service.py). Environment variables that
configure the ingestor are cleared for every test so that a developer's shell cannot leak into the suite."""

from __future__ import annotations

from fixtures.pg import *  # noqa: F403
from fixtures.service import *  # noqa: F403
from fixtures.sim import *  # noqa: F403
from fixtures.smtp import *  # noqa: F403
