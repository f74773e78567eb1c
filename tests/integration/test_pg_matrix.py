"""The session's server is the PostgreSQL the run asked for, and a supported one.

``./run test`` and ``./run matrix`` run the ``pg_matrix`` tests with ``PG_MAJOR`` set; without this check a
fetch that silently fell back to the default server would pass them on the wrong major.
"""

from __future__ import annotations

import os

import psycopg
import pytest

from fixtures.pg import PgServer
from fixtures.pgdist import SUPPORTED_MAJORS

REQUESTED = os.environ.get("PG_MAJOR", "")


@pytest.mark.pg_matrix
def test_the_session_server_is_the_requested_supported_major(pg_server: PgServer) -> None:
    with psycopg.connect(pg_server.admin_url) as conn:
        (version,) = conn.execute("SHOW server_version_num").fetchone() or ("0",)
    major = int(version) // 10000
    assert major in SUPPORTED_MAJORS
    if REQUESTED:
        assert major == int(REQUESTED)
