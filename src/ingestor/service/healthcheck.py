"""The container's HEALTHCHECK: ``python -m ingestor.service.healthcheck [--port N] [--path /health]``.

Exits 0 when the service's ``/health`` answers 200, 1 otherwise (503, refused, timeout). The port
defaults to ``HEALTH_PORT`` from the environment, so a changed port needs no change to the image.
Standard library only: it runs every few seconds and must start fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request

DEFAULT_PORT = 8088


def probe_url(host: str, port: int, path: str) -> str:
    """The URL to probe: a wildcard bind address is probed on loopback."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{path}"


def check(url: str, timeout: float) -> tuple[bool, str]:
    """(healthy, one line to print)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200, f"{response.status} {response.read(300).decode(errors='replace')}"
    except urllib.error.HTTPError as exc:
        return False, f"{exc.code} {exc.read(300).decode(errors='replace')}"
    except (OSError, ValueError) as exc:
        return False, f"unreachable: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ingestor.service.healthcheck", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HEALTH_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("HEALTH_PORT") or DEFAULT_PORT))
    parser.add_argument("--path", default="/health")
    parser.add_argument("--timeout", type=float, default=4.0)
    args = parser.parse_args(argv)
    healthy, line = check(probe_url(args.host, args.port, args.path), args.timeout)
    print(line.strip())
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
