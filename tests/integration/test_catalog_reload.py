"""A running service picks up ``catalog refresh`` at its next cycle, without a restart."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingestor.catalog import load_catalog
from ingestor.service.health import HealthState
from ingestor.service.scheduler import Scheduler
from ingestor.simulator import Faults
from ingestor.simulator.reports import synthesize_type

from fixtures.cli import invoke
from fixtures.harness import Harness
from fixtures.sim import RunningSimulator

SCHEMA = Path(__file__).resolve().parents[1] / "data" / "schema" / "reports.json"
NEW_TYPE = "scan_futureproto"


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def test_a_refreshed_catalog_is_used_from_the_next_cycle_on(
    make_simulator: Callable[..., RunningSimulator], migrated_db_url: str, tmp_path: Path
) -> None:
    # A type Shadowserver started to publish after this package was built; its file fails (empty download)
    # until the catalog knows the type, so that it is loaded in a cycle after the refresh.
    sim = make_simulator(
        days=1, rows=6, types=("scan_ssl",), unknown_types=(NEW_TYPE,), faults=Faults(empty_types=frozenset({NEW_TYPE}))
    )
    harness = Harness(sim, migrated_db_url, INGEST_INTERVAL_MINUTES="0.002", INGEST_JITTER_SECONDS="0")
    stop = threading.Event()
    scheduler = Scheduler(harness.settings, harness.db, harness.ingestor, HealthState(), stop)
    service = threading.Thread(target=scheduler.serve, name="service")
    service.start()
    try:
        files = "SELECT report_type, status, known_type FROM ss_report_files ORDER BY report_type"
        wait_for(
            lambda: harness.query(files) == [(NEW_TYPE, "failed", None), ("scan_ssl", "loaded", True)],
            "the first cycle",
        )
        reports = json.loads(SCHEMA.read_text())
        fields = list(synthesize_type(NEW_TYPE, load_catalog()).fields)
        reports[NEW_TYPE] = {"name": "Future protocol", "fields": fields}
        source = tmp_path / "reports.json"
        source.write_text(json.dumps(reports))
        refreshed = invoke("", "catalog", "refresh", "--from", str(source), "--yes")
        assert refreshed.exit_code == 0 and f"+ {NEW_TYPE}" in refreshed.stdout, refreshed.output
        # A cycle that was running during the refresh finishes with the catalog it started with.
        wait_for(lambda: NEW_TYPE in harness.ingestor.catalog, "a cycle to start with the refreshed catalog")
        sim.faults.clear()
        wait_for(lambda: harness.query(files)[0][1] == "loaded", f"the {NEW_TYPE} file to load")
    finally:
        stop.set()
        service.join(30)
        harness.close()
    assert not service.is_alive()
    assert harness.query(files) == [(NEW_TYPE, "loaded", True), ("scan_ssl", "loaded", True)]
    typed = harness.query("SELECT count(*), count(ip), count(port) FROM ss_events WHERE report_type = %s", NEW_TYPE)
    assert typed == [(6, 6, 6)]
    assert harness.ingestor.catalog.path is not None and NEW_TYPE in harness.ingestor.catalog
