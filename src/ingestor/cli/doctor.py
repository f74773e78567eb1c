"""``shadowserver-ingestor doctor``: check a deployment, one verdict a line, and say what to do."""

from __future__ import annotations

import json
import sys

import click
from rich.text import Text

from ingestor.cli.output import suggest
from ingestor.cli.runtime import handle_errors, stop_on_signals
from ingestor.logs import configure_logging
from ingestor.ops.doctor import Doctor, Verdict
from ingestor.ops.screen import Screen

_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}
_LABEL = {"ok": "ok", "warn": "warn", "fail": "FAIL", "skip": "skip"}


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts as a JSON array.")
@handle_errors
def doctor(as_json: bool) -> None:
    """Check what a new deployment gets wrong: configuration, API key and subscriptions, clock, database
    (reachable, version, privileges, viewer role, migrations), embedded server, free disk, health port.

    Each line is a verdict (ok, warn, FAIL, skip) and, when something is off, what to do. Reads and probes
    only: nothing is migrated, granted or written. Exit code 1 when something failed, else 0.
    """
    configure_logging("WARNING", "auto")
    import threading

    stop = threading.Event()
    screen = Screen()
    verdicts: list[Verdict] = []
    with stop_on_signals(stop):
        for verdict in Doctor(stop=stop).run():
            verdicts.append(verdict)
            if not as_json:
                screen.print(line(verdict))
    if as_json:
        click.echo(json.dumps([v.as_dict() for v in verdicts], indent=2))
    failed = sum(v.status == "fail" for v in verdicts)
    warned = sum(v.status == "warn" for v in verdicts)
    if not as_json:
        screen.print(
            Text(
                f"{failed} problem(s), {warned} warning(s)" if failed or warned else "everything checked is fine",
                style="bold red" if failed else "bold yellow" if warned else "bold green",
            )
        )
    sys.exit(1 if failed else 0)


def line(verdict: Verdict) -> Text:
    """``FAIL  database  <what is wrong>. Do: <what to do>``."""
    text = Text.assemble((f"{_LABEL[verdict.status]:<5}", _STYLE[verdict.status]), f" {verdict.area:<9} ")
    text.append(suggest(verdict.message))
    if verdict.fix:
        text.append(". Do: " + suggest(verdict.fix), style="bold" if verdict.status == "fail" else "")
    return text
