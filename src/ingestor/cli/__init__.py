"""The ``shadowserver-ingestor`` command line: one click group, one module per command family."""

from __future__ import annotations

from typing import IO, Any

import click

from ingestor import __version__


class UsageProblem(click.ClickException):
    """Bad command-line input, shown as one line (click's usage block would make it five) with exit 2."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def _one_line(exc: click.UsageError) -> UsageProblem:
    hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
    return UsageProblem(exc.format_message() + hint)


class IngestorGroup(click.Group):
    """The command group; its usage errors, and its commands', are one line each."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            raise _one_line(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise _one_line(exc) from None


@click.group(cls=IngestorGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="shadowserver-ingestor")
def main() -> None:
    """Ingest Shadowserver Reports API files into PostgreSQL, every event exactly once."""


def _register() -> None:
    from ingestor.cli import db, demo, events, ingest, service, simulate

    for command in (
        ingest.ping,
        ingest.once,
        ingest.backfill,
        ingest.migrate,
        service.run,
        simulate.simulate,
        demo.demo,
        db.db,
        events.events,
    ):
        main.add_command(command)
    from ingestor.cli import notify, ops, orgs

    for command in ops.COMMANDS:
        main.add_command(command)
    main.add_command(orgs.orgs)
    main.add_command(notify.notify_command)


_register()
