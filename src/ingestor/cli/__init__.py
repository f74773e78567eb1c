"""The ``shadowserver-ingestor`` command line: one click group, one module per command family."""

from __future__ import annotations

import click

from ingestor import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="shadowserver-ingestor")
def main() -> None:
    """Ingest Shadowserver Reports API files into PostgreSQL, every event exactly once."""


def _register() -> None:
    from ingestor.cli import db, demo, ingest, service, simulate

    for command in (
        ingest.ping,
        ingest.once,
        ingest.backfill,
        ingest.migrate,
        service.run,
        simulate.simulate,
        demo.demo,
        db.db,
    ):
        main.add_command(command)
    from ingestor.cli import ops

    for command in ops.COMMANDS:
        main.add_command(command)


_register()
