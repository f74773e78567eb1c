"""Deterministic report rows and their CSV rendering.

Speed matters (benchmarks render 10⁶ ``scan_ssl`` rows), so a report is not generated cell by cell. For
each column a small pool of values is drawn from :mod:`ingestor.simulator.columns` and rendered once;
consecutive columns are grouped into chunks, and each chunk gets a pool of pre-joined combinations. A row
is then its timestamp, its key (the subject IP, unique per row and second) and one combination per chunk,
joined in C by ``str.join``. Everything is drawn from one ``random.Random`` seeded per report, so a
report's bytes are identical on every render.

Malformed rows replace well-formed rows at seeded positions, using a second generator so that the
well-formed rows do not change when malformations are switched on.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import BinaryIO

from ingestor.catalog import ReportType
from ingestor.simulator.columns import (
    TEXT_COLUMNS,
    UNIQUE_COLUMNS,
    Cell,
    ColumnContext,
    generator_for,
    place_field,
    subject_ips,
    unique_value,
)
from ingestor.simulator.config import CsvStyle, Malformations, Scope

COLUMN_POOL = 64
"""Distinct values drawn per column."""
CHUNK_COLUMNS = 8
"""Columns per pre-joined chunk."""
BATCH_ROWS = 4096
INVALID_IPS = ("999.1.2.3", "192.0.2.300", "not-an-ip", "192.0.2", "2001:db8::g1", "1.2.3.4.5")
BOM = b"\xef\xbb\xbf"

_KeySource = Callable[[int, int], list[str]]


@cache
def _clock_times() -> tuple[str, ...]:
    return tuple(f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400))


def render_cell(value: Cell, quote_numbers: bool = False) -> str:
    """Render one value the Shadowserver way: strings quoted, numbers bare, ``None`` empty."""
    if value is None:
        return ""
    if isinstance(value, str):
        return '"' + value.replace('"', '""') + '"'
    return f'"{value}"' if quote_numbers else str(value)


@dataclass(frozen=True, slots=True)
class _Chunk:
    columns: tuple[str, ...]
    cells: tuple[tuple[str, ...], ...]
    joined: tuple[str, ...]


class ReportRenderer:
    """Renders one generated report; construct it again with the same arguments to get the same bytes."""

    def __init__(
        self,
        rtype: ReportType,
        *,
        day: date,
        rows: int,
        seed: int,
        scope: Scope,
        style: CsvStyle,
        malformed: Malformations,
    ) -> None:
        self.rtype = rtype
        self.day = day
        self.rows = rows
        self.seed = seed
        self.style = style
        self.malformed = malformed
        self.ctx = ColumnContext.for_type(rtype, scope, style.tag_separator, style.non_ascii)
        layout_rng = random.Random(seed)
        self.columns = self._layout(layout_rng)
        self._content_state = layout_rng.getstate()
        self.key_column = self._key_column()
        self.text_column = self._text_column()
        self._plan: dict[int, str] | None = None

    # -- layout -------------------------------------------------------------------------------------

    def _layout(self, rng: random.Random) -> list[str]:
        columns = [c for c in self.rtype.fields if c not in self.style.drop_columns]
        for extra in self.style.extra_columns:
            columns.insert(rng.randrange(1, len(columns) + 1), extra)
        if self.style.shuffle_columns:
            rng.shuffle(columns)
        return columns

    def _key_column(self) -> str | None:
        subject_ip = self.rtype.subject.ip
        if subject_ip in self.columns:
            return subject_ip
        return next((c for c in UNIQUE_COLUMNS if c in self.columns), None)

    def _text_column(self) -> str | None:
        candidates = [c for c in self.columns if c not in ("timestamp", self.key_column)]
        preferred = [c for c in (*TEXT_COLUMNS, "tag", "hostname") if c in candidates]
        if preferred or candidates:
            return (preferred or candidates)[0]
        return None

    @property
    def header(self) -> list[str]:
        return list(self.columns)

    # -- malformed rows -----------------------------------------------------------------------------

    def applicable_kinds(self) -> list[str]:
        """Malformation kinds this report can carry, in configured order."""
        subject = self.rtype.subject
        needs = {
            "invalid_ip": subject.ip is not None and subject.ip == self.key_column,
            "asn_zero": subject.asn is not None and subject.asn in self.columns,
            "asn_overflow": subject.asn is not None and subject.asn in self.columns,
            "nul_byte": self.text_column is not None,
            "non_utf8": self.text_column is not None,
            "huge_field": self.text_column is not None,
        }
        return [k for k in self.malformed.kinds if needs.get(k, True)]

    def plan(self) -> dict[int, str]:
        """Row index → malformation kind, decided before rendering (the report's ground truth)."""
        if self._plan is None:
            self._plan = {}
            spec = self.malformed
            kinds = self.applicable_kinds()
            applies = spec.types is None or self.rtype.type in spec.types
            if spec.active and kinds and applies and self.rows > 0:
                total = spec.count if spec.count > 0 else round(spec.rate * self.rows)
                rng = random.Random(self.seed ^ 0x5EED_BAD)
                positions = rng.sample(range(self.rows), min(total, self.rows))
                self._plan = {pos: kinds[n % len(kinds)] for n, pos in enumerate(positions)}
        return self._plan

    def injected(self) -> dict[str, int]:
        """How many rows carry each malformation."""
        counts: dict[str, int] = {}
        for kind in self.plan().values():
            counts[kind] = counts.get(kind, 0) + 1
        return counts

    # -- pools --------------------------------------------------------------------------------------

    def _build_chunks(self, rng: random.Random) -> list[_Chunk]:
        quote_numbers = self.style.quote_numbers
        pools: dict[str, list[str]] = {}
        for column in self.columns:
            if column in ("timestamp", self.key_column):
                continue
            generate = generator_for(column, self.ctx)
            pools[column] = [render_cell(generate(self.ctx, rng), quote_numbers) for _ in range(COLUMN_POOL)]
        if self.style.embedded_newlines and self.text_column in pools:
            pool = pools[self.text_column]
            for n in range(0, len(pool), 4):
                pool[n] = render_cell(f'first line {n}\nsecond line\r\nthird, "quoted" line')
        combos = min(1024, max(64, self.rows))
        chunks: list[_Chunk] = []
        for _, group in itertools.groupby(self.columns, key=lambda c: c in pools):
            names = list(group)
            if names[0] not in pools:
                chunks.extend(_Chunk((name,), (), ()) for name in names)
                continue
            for start in range(0, len(names), CHUNK_COLUMNS):
                part = tuple(names[start : start + CHUNK_COLUMNS])
                cells = tuple(self._combo(part, pools, rng) for _ in range(combos))
                chunks.append(_Chunk(part, cells, tuple(",".join(cs) for cs in cells)))
        return chunks

    def _combo(self, part: tuple[str, ...], pools: dict[str, list[str]], rng: random.Random) -> tuple[str, ...]:
        """One combination of a chunk's cells; geo, region and city of one side come from one place."""
        places: dict[str, tuple[str, str, str]] = {}
        cells: list[str] = []
        for column in part:
            linked = place_field(column)
            if linked is None:
                cells.append(rng.choice(pools[column]))
                continue
            prefix, field = linked
            if prefix not in places:
                places[prefix] = rng.choice(self.ctx.places_for(prefix))
            cells.append(render_cell(places[prefix][field] or None))
        return tuple(cells)

    # -- rendering ----------------------------------------------------------------------------------

    def header_line(self) -> str:
        return ",".join(f'"{c}"' for c in self.columns) + self.style.line_terminator

    def render(self, out: BinaryIO) -> None:
        """Write the whole file to ``out`` (binary)."""
        if self.style.bom:
            out.write(BOM)
        out.write(self.header_line().encode("utf-8"))
        for text in self.iter_batches():
            out.write(text.encode("utf-8", "surrogateescape"))

    def iter_batches(self) -> Iterator[str]:
        """Yield the data rows as text in batches (lone surrogates stand for non-UTF-8 bytes).

        Every call starts from the same generator state, so every render gives the same text.
        """
        rng = random.Random()
        rng.setstate(self._content_state)
        chunks = self._build_chunks(rng)
        n = self.rows
        times = _clock_times()
        z = "Z" if self.style.timestamp_z else ""
        ts_prefix = f'"{self.day.isoformat()} '
        gap = 86400 // n if n else 1
        keys = self._key_values(rng)
        plan = self.plan()
        terminator = self.style.line_terminator
        for start in range(0, n, BATCH_ROWS):
            stop = min(n, start + BATCH_ROWS)
            count = stop - start
            if gap > 1:
                secs = [i * 86400 // n + rng.randrange(gap) for i in range(start, stop)]
            else:
                secs = [i * 86400 // n for i in range(start, stop)]
            slots: list[Sequence[str]] = []
            picks: list[list[int] | None] = []
            for chunk in chunks:
                column = chunk.columns[0]
                if column == "timestamp":
                    slots.append([f'{ts_prefix}{times[s]}{z}"' for s in secs])
                    picks.append(None)
                elif not chunk.joined:
                    slots.append(keys(start, stop))
                    picks.append(None)
                else:
                    chosen = rng.choices(range(len(chunk.joined)), k=count)
                    slots.append(list(map(chunk.joined.__getitem__, chosen)))
                    picks.append(chosen)
            lines = list(map(",".join, zip(*slots, strict=True)))
            for pos in (p for p in range(start, stop) if p in plan) if plan else ():
                offset = pos - start
                cells: list[str] = []
                for chunk, slot, picked in zip(chunks, slots, picks, strict=True):
                    cells.extend(chunk.cells[picked[offset]] if picked is not None else (slot[offset],))
                lines[offset] = ",".join(self._malform(plan[pos], cells, pos))
            lines.append("")
            yield terminator.join(lines)

    def _key_values(self, rng: random.Random) -> _KeySource:
        if self.key_column is None:
            return lambda start, stop: []
        if self.key_column == self.rtype.subject.ip:
            ips = [render_cell(ip) for ip in subject_ips(self.ctx, rng)]
            size = len(ips)
            return lambda start, stop: [ips[i % size] for i in range(start, stop)]
        column, seed = self.key_column, self.seed
        return lambda start, stop: [render_cell(unique_value(column, i, seed)) for i in range(start, stop)]

    def _malform(self, kind: str, cells: list[str], pos: int) -> list[str]:
        rng = random.Random(self.seed * 1_000_003 + pos)
        index = {c: n for n, c in enumerate(self.columns)}
        text_at = index.get(self.text_column or "", 0)
        quote_numbers = self.style.quote_numbers
        if kind == "extra_cells":
            return [*cells, '"unexpected"', "42"][: len(cells) + rng.randrange(1, 3)]
        if kind == "missing_cells":
            return cells[: max(1, len(cells) - rng.randrange(1, 4))]
        if kind == "invalid_ip" and self.key_column:
            cells[index[self.key_column]] = render_cell(rng.choice(INVALID_IPS))
        elif kind == "nul_byte":
            cells[text_at] = render_cell("nul\x00byte")
        elif kind == "non_utf8":
            cells[text_at] = render_cell("caf\udcff latin-1 \udce9")
        elif kind == "huge_field":
            filler = "HTTP/1.1 200 OK | Server: x | " * (self.malformed.huge_size // 30 + 1)
            cells[text_at] = render_cell(filler[: self.malformed.huge_size])
        elif kind in ("asn_zero", "asn_overflow") and self.rtype.subject.asn:
            value = 0 if kind == "asn_zero" else 2**32 + rng.randrange(1, 10_000)
            cells[index[self.rtype.subject.asn]] = render_cell(value, quote_numbers)
        return cells
