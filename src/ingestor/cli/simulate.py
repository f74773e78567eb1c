"""``shadowserver-ingestor simulate``: run the local Shadowserver simulator in the foreground."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from datetime import date
from pathlib import Path
from types import FrameType
from typing import Any

import click

from ingestor.cli import params
from ingestor.db.embedded import default_data_dir
from ingestor.simulator import (
    DEFAULT_TYPES,
    MALFORMATIONS,
    ApiKey,
    CsvStyle,
    Faults,
    LateReport,
    Malformations,
    Republish,
    Simulator,
    SimulatorConfig,
    SimulatorServer,
)


def _csv_list(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def _parse_date(ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("expected YYYY-MM-DD") from None


@click.command("simulate")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="0 = any free.")
@click.option("--api-key", default="demo-key", show_default=True)
@click.option("--api-secret", default="demo-secret", show_default=True)
@click.option("--subscription", "subscriptions", multiple=True, help="Subscription name (repeatable).")
@click.option("--query-permission", is_flag=True, help="Allow reports/query (else 412).")
@click.option("--types", default=",".join(DEFAULT_TYPES), show_default=True, help="Comma-separated types.")
@click.option("--days", default=3, show_default=True, type=click.IntRange(1, 3650))
@click.option("--rows", default=100, show_default=True, type=click.IntRange(0, 100_000_000), help="Rows per report.")
@click.option("--variants", default="geo", show_default=True, help="Comma-separated file variants.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**63 - 1))
@click.option("--today", callback=_parse_date, help="Simulated UTC date (default: the real one).")
@click.option(
    "--reports-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Serve the YYYY-MM-DD-<type>-<rest>.csv files of this directory.",
)
@click.option("--legacy-download", is_flag=True, help="Answer reports/download instead of 404.")
@click.option(
    "--unknown-types",
    is_flag=False,
    flag_value="scan_futureproto",
    default=None,
    help="Also list types the catalog lacks (default scan_futureproto).",
)
@click.option("--late", "late_type", help="Add a 3-day-old -delayed file, listed from tomorrow.")
@click.option("--republish", "republish_type", help="Republish yesterday's file of this type tomorrow.")
# CSV style
@click.option("--legacy-timestamps", is_flag=True, help="Timestamps without the Z suffix.")
@click.option("--comma-tags", is_flag=True, help="Join tags with ',' instead of ';'.")
@click.option("--crlf", is_flag=True, help="CRLF line endings.")
@click.option("--quote-numbers", is_flag=True)
@click.option("--shuffle-columns", is_flag=True)
@click.option("--extra-columns", default="", help="Comma-separated unknown columns to add.")
@click.option("--drop-columns", default="", help="Comma-separated schema columns to leave out.")
@click.option("--non-ascii", is_flag=True, help="Values such as MÜNCHEN and café.")
@click.option("--embedded-newlines", is_flag=True)
@click.option("--bom", is_flag=True)
@click.option("--no-charset", is_flag=True, help="Content-Type text/csv without charset.")
# Malformed rows
@click.option("--malformed-rate", default=0.0, type=params.fraction(), show_default=True)
@click.option("--malformed-kinds", default=",".join(MALFORMATIONS), show_default=True)
# Faults
@click.option("--error-rate", default=0.0, type=params.fraction(), help="API 5xx probability.")
@click.option("--error-status", default=503, show_default=True, type=click.IntRange(100, 599))
@click.option("--latency", default=0.0, type=params.seconds(0, 3600), help="Added API latency (s).")
@click.option("--download-latency", default=0.0, type=params.seconds(0, 3600), help="Added download latency (s).")
@click.option("--stream-rate", type=click.IntRange(1, 10**12), help="Download speed limit (bytes/s).")
@click.option("--truncate-rate", default=0.0, type=params.fraction())
@click.option("--empty-rate", default=0.0, type=params.fraction())
@click.option("--shuffle-keys", is_flag=True, help="Shuffle the key order of reports/list items.")
@click.option(
    "--bogus-body",
    type=click.Choice(["html", "json", "foreign_csv"]),
    help="Answer downloads with 200 and an HTML page, a JSON error or an unrelated CSV.",
)
@click.option(
    "--gzip",
    "gzip_body",
    type=click.Choice(["labelled", "unlabelled"]),
    help="gzip download bodies, with or without Content-Encoding.",
)
@click.option(
    "--short-content-length",
    type=params.fraction(min_open=True),
    help="Announce this fraction of the body as Content-Length, send all of it.",
)
@click.option("--no-final-newline", is_flag=True, help="Serve files without their final line break.")
@click.option("--endless", is_flag=True, help="Downloads never end (chunked, the last row repeated).")
@click.option("--trickle", type=params.seconds(0, 3600), help="Send bodies one byte every this many seconds.")
@click.option("-v", "--verbose", is_flag=True, help="Log each request.")
def simulate(**opts: Any) -> None:
    """Serve a local Shadowserver Reports API (/api2/) and download host (/dl/) on one port.

    Faults can also be changed while it runs: POST /_control/faults with a JSON object; counters are at
    GET /_control/stats.
    """
    logging.basicConfig(
        level=logging.INFO if opts["verbose"] else logging.WARNING, format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        sim = Simulator(_config(opts), faults=_faults(opts))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        server = SimulatorServer(sim, host=opts["host"], port=opts["port"])
    except OSError as exc:
        sim.close()
        raise click.ClickException(f"cannot listen on {opts['host']}:{opts['port']}: {exc.strerror}") from exc
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    server.start()
    key = sim.config.keys[0]
    click.echo(f"SS_API_URL={server.api_url}")
    click.echo(f"SS_DOWNLOAD_URL={server.download_url}")
    click.echo(f"SS_API_KEY={key.key}")
    click.echo(f"SS_API_SECRET={key.secret}")
    # never the default embedded database, where real data belongs (the ingestor refuses it for a simulator)
    click.echo(f"EMBEDDED_DB_DIR={default_data_dir().parent / 'simulator' / 'pgdata'}")
    sys.stdout.flush()  # piped or redirected, the lines are read while the simulator runs
    click.echo(f"# simulator ready, today {sim.today().isoformat()} (UTC); Ctrl-C to stop", err=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        sim.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("# simulator stopped", err=True)


def _config(opts: dict[str, Any]) -> SimulatorConfig:
    key = ApiKey(
        key=str(opts["api_key"]),
        secret=str(opts["api_secret"]),
        subscriptions=tuple(opts["subscriptions"]) or ("example-org",),
        query_permission=bool(opts["query_permission"]),
    )
    style = CsvStyle(
        timestamp_z=not opts["legacy_timestamps"],
        tag_separator="," if opts["comma_tags"] else ";",
        line_terminator="\r\n" if opts["crlf"] else "\n",
        quote_numbers=bool(opts["quote_numbers"]),
        shuffle_columns=bool(opts["shuffle_columns"]),
        extra_columns=_csv_list(opts["extra_columns"]),
        drop_columns=_csv_list(opts["drop_columns"]),
        non_ascii=bool(opts["non_ascii"]),
        embedded_newlines=bool(opts["embedded_newlines"]),
        bom=bool(opts["bom"]),
    )
    unknown = opts["unknown_types"]
    return SimulatorConfig(
        keys=(key,),
        types=_csv_list(opts["types"]),
        days=int(opts["days"]),
        rows=int(opts["rows"]),
        variants=_csv_list(opts["variants"]) or ("geo",),
        seed=int(opts["seed"]),
        today=opts["today"],
        style=style,
        malformed=Malformations(rate=float(opts["malformed_rate"]), kinds=_csv_list(opts["malformed_kinds"])),
        unknown_types=_csv_list(unknown) if unknown else (),
        late=(LateReport(type=str(opts["late_type"])),) if opts["late_type"] else (),
        republish=(Republish(type=str(opts["republish_type"])),) if opts["republish_type"] else (),
        reports_dir=opts["reports_dir"],
        legacy_download=bool(opts["legacy_download"]),
    )


def _faults(opts: dict[str, Any]) -> Faults:
    stream_rate = opts["stream_rate"]
    return Faults(
        api_error_rate=float(opts["error_rate"]),
        api_error_status=int(opts["error_status"]),
        api_latency=float(opts["latency"]),
        download_latency=float(opts["download_latency"]),
        stream_rate=int(stream_rate) if stream_rate is not None else None,
        truncate_rate=float(opts["truncate_rate"]),
        empty_rate=float(opts["empty_rate"]),
        shuffle_keys=bool(opts["shuffle_keys"]),
        csv_charset=not opts["no_charset"],
        bogus_body=opts["bogus_body"],
        gzip_body=opts["gzip_body"],
        short_content_length=float(opts["short_content_length"] or 0.0),
        no_final_newline=bool(opts["no_final_newline"]),
        endless_body=bool(opts["endless"]),
        trickle_seconds=float(opts["trickle"] or 0.0),
    )
