"""``shadowserver-ingestor run``: the long-running service (also ``python -m ingestor.main`` without flags)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from ingestor.cli import params
from ingestor.cli.runtime import handle_errors, runtime
from ingestor.db.connect import Database
from ingestor.service.app import serve

log = logging.getLogger("ingestor.service")


@click.command("run")
@click.option(
    "--interval",
    type=params.FiniteFloat(0, 525_600, min_open=True),
    help="Minutes between cycles [INGEST_INTERVAL_MINUTES].",
)
@click.option("--jitter", type=params.seconds(), help="Seconds of random delay added [INGEST_JITTER_SECONDS].")
@click.option(
    "--backfill-days",
    type=params.days(0, params.MAX_BACKFILL_DAYS),
    help="Days loaded on a first start [BACKFILL_DAYS].",
)
@click.option("--health-host", help="Address of /health, /livez and /metrics [HEALTH_HOST].")
@click.option("--health-port", type=click.IntRange(0, 65535), help="Their port; 0 = any free one [HEALTH_PORT].")
@handle_errors
def run(**options: Any) -> None:
    """Run as a service: a cycle at start-up and then every interval, until SIGTERM or SIGINT.

    On a first start (no successful run in the database yet) the first cycle backfills BACKFILL_DAYS
    days. One instance ingests per database; a second one stands by and takes over when the first
    stops. SIGTERM abandons the current file cleanly and exits 0 within STOP_TIMEOUT_SECONDS.
    """
    overrides = {
        "INGEST_INTERVAL_MINUTES": options["interval"],
        "INGEST_JITTER_SECONDS": options["jitter"],
        "BACKFILL_DAYS": options["backfill_days"],
        "HEALTH_HOST": options["health_host"],
        "HEALTH_PORT": options["health_port"],
    }
    with runtime(need_api=True, overrides=overrides, service=True) as rt:
        rt.db = Database.from_settings(rt.settings)  # closed (embedded lease released) by the runtime
        if not rt.stop.is_set():
            serve(rt.settings, rt.db, rt.require_client(), rt.stop)
    elapsed = rt.watchdog.elapsed()
    if elapsed is not None:  # a service stopped by SIGTERM/SIGINT has done its job: exit 0
        log.info("stopped cleanly %.1f s after the shutdown request", elapsed)
    sys.exit(0)
