"""Service mode (``shadowserver-ingestor run``): scheduled cycles, health and metrics, a bounded shutdown.

scheduler    the loop: first-start backfill, interval and jitter, the ingestion lock, standby
health       health state, the live database probe, the 200/503 rules
httpd        /health, /livez and /metrics on HEALTH_HOST:HEALTH_PORT
watchdog     ends the process if a shutdown overruns STOP_TIMEOUT_SECONDS
healthcheck  the container's HEALTHCHECK client
app          the parts put together
"""
