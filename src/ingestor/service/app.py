"""The service put together: health server and scheduler over one database and one API client.

Stopping (SIGTERM/SIGINT set ``stop``): the scheduler abandons the current file and closes its run as
``interrupted``, releases the lock and returns; then the health server stops. The caller closes the API
client and the database (releasing its lease on the embedded server); :class:`ShutdownWatchdog`
bounds all of it to ``STOP_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import logging
import threading

from ingestor.api.client import ShadowserverClient
from ingestor.config import Settings
from ingestor.db.connect import Database
from ingestor.pipeline import Ingestor
from ingestor.service.health import DatabaseProbe, HealthCheck, HealthPolicy, HealthState
from ingestor.service.httpd import HealthServer
from ingestor.service.scheduler import Scheduler

log = logging.getLogger("ingestor.service")


def serve(settings: Settings, db: Database, client: ShadowserverClient, stop: threading.Event) -> None:
    """Run the service until ``stop`` is set."""
    log.info(
        "service starting: a cycle every %g min (+ up to %g s jitter), first-start backfill %d day(s),"
        " database %s, shutdown bound %g s",
        settings.interval_minutes,
        settings.jitter_seconds,
        settings.backfill_days,
        db.display,
        settings.stop_timeout,
    )
    state = HealthState()
    probe = DatabaseProbe(db.conninfo, on_unreachable=db.ensure_server)
    check = HealthCheck(state, probe, HealthPolicy.from_settings(settings))
    with HealthServer(settings.health_host, settings.health_port, check):
        ingestor = Ingestor(settings, db, client, stop=stop)
        Scheduler(settings, db, ingestor, state, stop).serve()
