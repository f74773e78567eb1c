"""Latency of ``/health`` under a burst of concurrent probes while the service is loading a big report.

    .venv/bin/python bench/health.py                        # 200 clients x 20 requests, 300k-row report
    .venv/bin/python bench/health.py --clients 50 --rows 50000

Starts an embedded PostgreSQL, the simulator (``shadowserver-ingestor simulate``, its own process) serving
one ``--rows``-row ``scan_ssl`` report, and the service (``shadowserver-ingestor run``, its own process)
whose first cycle loads it. Once ``/health`` says a cycle is running, ``--clients`` threads each send
``--requests`` ``GET /health`` one after the other, each on a new connection (as Docker's and
Kubernetes' probes do), all released at once. Printed: the latency percentiles, the slowest request,
how many took over 10 s or failed, and whether the load was still running when the last one finished
(so every request was answered during the load).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ingestor.db.connect import EMBEDDED_SETTINGS  # noqa: E402
from ingestor.db.embedded import EmbeddedPostgres  # noqa: E402
from ingestor.db.migrate import migrate  # noqa: E402


def get_health(port: int, timeout: float) -> tuple[float, int | None]:
    """Seconds for one ``GET /health`` on a new connection, and its status (None: failed)."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", "/health")
        response = connection.getresponse()
        response.read()
        return time.monotonic() - started, response.status
    except OSError:
        return time.monotonic() - started, None
    finally:
        connection.close()


def health_body(port: int) -> dict[str, Any] | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/health")
        return dict(json.loads(connection.getresponse().read()))
    except (OSError, ValueError):
        return None
    finally:
        connection.close()


def start_simulator(rows: int, env: dict[str, str]) -> tuple[subprocess.Popen[str], dict[str, str]]:
    today = datetime.now(UTC).date().isoformat()
    command = [sys.executable, "-m", "ingestor", "simulate", "--port", "0", "--types", "scan_ssl", "--days", "1"]
    process = subprocess.Popen(
        [*command, "--rows", str(rows), "--today", today], stdout=subprocess.PIPE, text=True, env=env
    )
    assert process.stdout is not None
    settings = dict(process.stdout.readline().strip().split("=", 1) for _ in range(4))
    return process, settings


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--requests", type=int, default=20, help="requests per client, one after the other")
    parser.add_argument("--rows", type=int, default=300_000, help="rows of the report the service loads")
    parser.add_argument("--timeout", type=float, default=30.0, help="client timeout per request (s)")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="ssi-bench-health-"))
    base.chmod(0o755)
    server = EmbeddedPostgres(base / "pgdata", db_name="postgres", settings=EMBEDDED_SETTINGS)
    server.start()
    processes: list[subprocess.Popen[str]] = []
    try:
        url = server.admin_url()
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn, viewer_role=None)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SS_", "DB_", "DATABASE_", "HEALTH_"))}
        simulator, api = start_simulator(args.rows, env)
        processes.append(simulator)
        port = free_port()
        service_env = {
            **env,
            **api,
            "DATABASE_URL": url,
            "BACKFILL_DAYS": "0",
            "REQUEST_DELAY_SECONDS": "0",
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "json",
            "SS_WORK_DIR": str(base),
        }
        service = subprocess.Popen(
            [sys.executable, "-m", "ingestor", "run", "--health-host", "127.0.0.1", "--health-port", str(port)],
            env=service_env,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(service)
        while not ((body := health_body(port)) and body.get("cycle_running")):
            if service.poll() is not None:
                raise SystemExit(f"the service exited: {service.stderr.read() if service.stderr else ''}")
            time.sleep(0.2)
        time.sleep(2)  # well into the load: downloading and COPYing

        latencies: list[float] = []
        failures = 0
        lock = threading.Lock()
        go = threading.Event()

        def client() -> None:
            nonlocal failures
            go.wait()
            for _ in range(args.requests):
                seconds, status = get_health(port, args.timeout)
                with lock:
                    latencies.append(seconds)
                    failures += status is None

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        started = time.monotonic()
        go.set()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        still_loading = bool((body := health_body(port)) and body.get("cycle_running"))

        ordered = sorted(latencies)

        def pct(p: float) -> float:
            return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

        print(
            f"{args.clients} clients x {args.requests} requests during the load of a {args.rows:,}-row report: "
            f"p50 {pct(50) * 1000:.0f} ms, p90 {pct(90) * 1000:.0f} ms, p99 {pct(99) * 1000:.0f} ms, "
            f"max {ordered[-1]:.2f} s, mean {statistics.mean(ordered) * 1000:.0f} ms; "
            f"{sum(t > 10 for t in ordered)} over 10 s, {failures} failed; {len(ordered) / elapsed:.0f} req/s; "
            f"load still running at the end: {still_loading}"
        )
        stderr_lines = 0
        service.terminate()
        _, err = service.communicate(timeout=30)
        for line in err.splitlines():
            stderr_lines += 1
            if not line.startswith("{"):
                print(f"  non-JSON stderr line: {line[:160]}")
                break
        print(f"service stderr: {stderr_lines} lines (LOG_FORMAT=json)")
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


if __name__ == "__main__":
    main()
