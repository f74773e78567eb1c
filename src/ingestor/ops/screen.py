"""Human output of a command: rich tables on a terminal; anywhere else plain text.

Plain means what a pipe, a file or an e-mail wants: no colours, no box drawing, no trailing spaces;
tables become aligned columns under a header line (as ``ps`` prints them), and titles a line of their
own. Programs use ``--format csv`` or ``--format json`` instead.
"""

from __future__ import annotations

import io
import sys
from typing import Any, TextIO

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from ingestor.terminal import is_tty

PLAIN_WIDTH = 1000
"""Width of plain output: wide enough that a table keeps its natural width instead of folding."""


class Screen:
    """Prints renderables to ``out`` (stdout by default): styled on a terminal, plain text otherwise."""

    def __init__(self, out: TextIO | None = None, *, plain: bool | None = None, width: int | None = None) -> None:
        self.out = out or sys.stdout
        self.plain = not is_tty(self.out) if plain is None else plain
        if self.plain:
            self.console = Console(
                file=io.StringIO(), width=width or PLAIN_WIDTH, color_system=None, highlight=False, soft_wrap=False
            )
        else:
            self.console = Console(file=self.out, highlight=False, width=width)

    @property
    def width(self) -> int:
        return self.console.width

    def table(self, title: str | None, *columns: str, right: tuple[str, ...] = (), fold: bool = True) -> Table:
        """A table with these columns (those in ``right`` right-aligned)."""
        if self.plain:
            table = Table(title=title, title_justify="left", title_style="", box=None, pad_edge=False, header_style="")
        else:
            table = Table(
                title=title, title_justify="left", title_style="bold", header_style="bold", box=box.SIMPLE_HEAD
            )
        for column in columns:
            table.add_column(
                column, justify="right" if column in right else "left", overflow="fold" if fold else "ellipsis"
            )
        return table

    def print(self, *renderables: Any) -> None:
        """Print, one renderable after the other (markup allowed in strings)."""
        if not self.plain:
            self.console.print(*renderables)
            return
        with self.console.capture() as captured:
            self.console.print(*renderables)
        lines = [line.rstrip() for line in captured.get().splitlines()]
        self.out.write("".join(line + "\n" for line in lines))

    def measure(self, table: Table) -> int:
        """The width ``table`` needs to show every cell unfolded."""
        unbounded = self.console.options.update(width=PLAIN_WIDTH * 10)
        return Measurement.get(self.console, unbounded, table).maximum
