"""Prometheus metrics, updated by the pipeline and exposed by the service on ``/metrics``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PREFIX = "shadowserver_ingestor"

CYCLES = Counter(f"{PREFIX}_cycles", "Ingestion cycles by outcome", ["status"])
CYCLE_SECONDS = Histogram(
    f"{PREFIX}_cycle_duration_seconds",
    "Duration of ingestion cycles",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200),
)
LAST_SUCCESS = Gauge(f"{PREFIX}_last_success_timestamp_seconds", "Unix time of the last successful cycle")
FILES = Counter(f"{PREFIX}_files", "Report files by outcome", ["outcome"])
ROWS = Counter(f"{PREFIX}_rows", "Report rows by report type and outcome", ["report_type", "outcome"])
DOWNLOADED_BYTES = Counter(f"{PREFIX}_downloaded_bytes", "Bytes of report files downloaded")
API_REQUESTS = Counter(f"{PREFIX}_api_requests", "Shadowserver API requests by method and status", ["method", "status"])
API_SECONDS = Histogram(
    f"{PREFIX}_api_request_duration_seconds",
    "Latency of Shadowserver API requests",
    ["method"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)

# Service state, set by the scheduler and by each health evaluation (``/health`` and ``/metrics``).
HEALTHY = Gauge(f"{PREFIX}_healthy", "1 while /health answers 200, else 0")
DATABASE_REACHABLE = Gauge(f"{PREFIX}_database_reachable", "1 when the last database probe succeeded")
CONSECUTIVE_FAILURES = Gauge(f"{PREFIX}_consecutive_failed_cycles", "Cycles failed in a row (0 after a success)")
STANDBY = Gauge(f"{PREFIX}_standby", "1 while another instance holds the ingestion lock and this one waits")

# The picture (picture/feed.py), set by the service after each cycle.
FEED_ALARMS = Gauge(f"{PREFIX}_feed_alarm", "1 for each alarm on the feed itself", ["kind", "report_type"])
OPEN_FINDINGS = Gauge(
    f"{PREFIX}_open_findings", "Open findings by report type and severity", ["report_type", "severity"]
)
