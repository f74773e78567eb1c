"""The ``shadowserver-ingestor`` command line: one click group, one module per command family."""

from __future__ import annotations

from typing import IO, Any

import click

from ingestor import __version__, terminal


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
        if parent is None:  # a new invocation (tests run several in one process)
            terminal.reset_verbosity()
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            raise _one_line(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise _one_line(exc) from None


def _verbose(ctx: click.Context, param: click.Parameter, value: int) -> None:
    terminal.set_verbosity(value or 0)


def verbose_option() -> click.Option:
    """``-v``: on a terminal, show the log's INFO lines (the details of each file); ``-vv``: DEBUG too."""
    return click.Option(
        ["-v", "--verbose"],
        count=True,
        expose_value=False,
        is_eager=True,
        callback=_verbose,
        help="On a terminal, also show the log's details (-vv: debug lines).",
    )


def _add_verbose(command: click.Command) -> None:
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _add_verbose(sub)
    if not any("-v" in param.opts for param in command.params):
        command.params.append(verbose_option())


@click.group(cls=IngestorGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="shadowserver-ingestor")
def main() -> None:
    """Ingest Shadowserver Reports API files into PostgreSQL, every event exactly once."""


def _register() -> None:
    from ingestor.cli import db, demo, doctor, events, ingest, service, simulate

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
        doctor.doctor,
    ):
        main.add_command(command)
    from ingestor.cli import notify, ops, orgs, picture

    for command in (*ops.COMMANDS, *picture.COMMANDS):
        main.add_command(command)
    main.add_command(orgs.orgs)
    main.add_command(notify.notify_command)
    _add_verbose(main)


_register()
