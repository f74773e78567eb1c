"""``orgs import FILE``: organisations from a CSV or a YAML file (formats in docs/constituents.md).

The whole file is read and validated first; every problem is reported with its file and line, and when
there is any, nothing is written (:class:`ImportProblems`). Several CSV rows (or YAML entries) with the
same name make one organisation: their lists are joined, and their single values must agree.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

import yaml

from ingestor.constituents import model
from ingestor.constituents.model import OrgInput
from ingestor.errors import IngestorError
from ingestor.ops.filters import parse_severity, parse_type_name

LIST_FIELDS = ("emails", "networks", "cidrs", "asns", "domains", "tags", "types")
SCALAR_FIELDS = ("language", "handle", "country", "interval", "min_severity", "mode", "format", "enabled")
CSV_COLUMNS = ("name", *LIST_FIELDS, *SCALAR_FIELDS)
_SPLIT = re.compile(r"[\s,;]+")
MAX_FILE_BYTES = 256 << 20


class ImportProblems(IngestorError):
    """The file has errors; nothing was imported."""

    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = problems[:50]
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{len(problems)} problem(s), nothing imported:\n" + "\n".join(f"  {p}" for p in shown) + more)


def _items(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(item) for item in value if item is not None and str(item).strip()]  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    return [item for item in _SPLIT.split(str(value)) if item]


def _apply_list(org: OrgInput, key: str, values: list[str]) -> None:
    for value in values:
        if key == "emails":
            org.emails.append(model.parse_email(value))
        elif key == "networks":
            parsed = model.parse_network_value(value)
            if isinstance(parsed, int):
                org.asns.append(parsed)
            elif isinstance(parsed, str):
                org.domains.append(parsed)
            else:
                org.cidrs.append(parsed)
        elif key == "cidrs":
            org.cidrs.append(model.parse_cidr(value))
        elif key == "asns":
            org.asns.append(model.parse_asn(value))
        elif key == "domains":
            org.domains.append(model.parse_domain(value))
        elif key == "tags":
            org.tags.append(model.parse_tag(value))
        elif key == "types":
            org.notify_types = [*(org.notify_types or []), parse_type_name(value)]


_SCALARS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "language": ("language", model.parse_language),
    "handle": ("handle", lambda v: str(v).strip().upper()),
    "country": ("country", lambda v: _country(str(v))),
    "interval": ("notify_interval_hours", model.parse_interval),
    "min_severity": ("notify_min_severity", parse_severity),
    "mode": ("notify_mode", lambda v: model.parse_choice(str(v), model.MODES, "mode")),
    "format": ("notify_format", lambda v: model.parse_choice(str(v), model.FORMATS, "format")),
    "enabled": ("notify_enabled", model.parse_bool),
}


def _country(value: str) -> str:
    text = value.strip().upper()
    if not re.fullmatch(r"[A-Z]{2}", text):
        raise ValueError(f"not a two-letter country code: {value!r}")
    return text


class _Collector:
    """Organisations by name, merged across entries, with every problem found."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.orgs: dict[str, OrgInput] = {}
        self.set_at: dict[tuple[str, str], Any] = {}
        self.problems: list[str] = []

    def problem(self, line: int, message: str) -> None:
        self.problems.append(f"{self.path.name}:{line}: {message}")

    def add(self, line: int, values: dict[str, Any]) -> None:
        try:
            name = model.parse_name(str(values.get("name") or ""))
        except ValueError as exc:
            self.problem(line, str(exc))
            return
        org = self.orgs.setdefault(name, OrgInput(name))
        for key, value in values.items():
            if key == "name" or value is None or value == "":
                continue
            try:
                if key in LIST_FIELDS:
                    _apply_list(org, key, _items(value))
                elif key in _SCALARS:
                    attribute, parse = _SCALARS[key]
                    parsed = parse(value)
                    earlier = self.set_at.setdefault((name, attribute), parsed)
                    if earlier != parsed:
                        raise ValueError(f"{key} {parsed!r} contradicts {earlier!r} given earlier for {name!r}")
                    setattr(org, attribute, parsed)
                else:
                    raise ValueError(f"unknown field {key!r} (known: {', '.join(CSV_COLUMNS)})")
            except ValueError as exc:
                self.problem(line, f"{name}: {exc}")

    def result(self) -> list[OrgInput]:
        for org in self.orgs.values():
            org.dedupe()
            if not org.emails:
                self.problems.append(f"{self.path.name}: {org.name}: no abuse e-mail address")
        if self.problems:
            raise ImportProblems(self.problems)
        return list(self.orgs.values())


def read_csv(path: Path, text: str) -> list[OrgInput]:
    """Organisations of a CSV file with a header line (columns: :data:`CSV_COLUMNS`, ``name`` required)."""
    collector = _Collector(path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip().lower() for name in reader.fieldnames or []]
    if "name" not in header:
        raise ImportProblems(
            [f"{path.name}:1: the header must name the columns, at least 'name' ({', '.join(CSV_COLUMNS)})"]
        )
    unknown = [name for name in header if name not in CSV_COLUMNS]
    if unknown:
        raise ImportProblems(
            [f"{path.name}:1: unknown column(s) {', '.join(unknown)} (known: {', '.join(CSV_COLUMNS)})"]
        )
    reader.fieldnames = header
    for row in reader:
        if None in row:
            collector.problem(reader.line_num, "more cells than header columns")
            continue
        if not any((value or "").strip() for value in row.values()):
            continue
        collector.add(reader.line_num, {key: (value or "").strip() for key, value in row.items()})
    return collector.result()


def read_yaml(path: Path, text: str) -> list[OrgInput]:
    """Organisations of a YAML file: a list of mappings, or ``organisations:`` holding one."""
    collector = _Collector(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)  # nodes know their line
        loaded: Any = yaml.safe_load(text)  # the same document as Python values
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise ImportProblems([f"{path.name}:{line}: not valid YAML: {getattr(exc, 'problem', None) or exc}"]) from None
    if root is None:
        return []
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value in ("organisations", "organizations", "orgs"):
                root, loaded = value, loaded[key.value]
                break
        else:
            raise ImportProblems([f"{path.name}:1: expected a list of organisations (or 'organisations:' holding one)"])
    if not isinstance(root, yaml.SequenceNode):
        raise ImportProblems([f"{path.name}:{root.start_mark.line + 1}: expected a list of organisations"])
    entries = cast("list[object]", loaded)
    for node, data in zip(root.value, entries, strict=True):
        line = node.start_mark.line + 1
        if not isinstance(data, dict):
            collector.problem(line, "each organisation is a mapping (name: ..., emails: [...], networks: [...])")
            continue
        values: dict[str, Any] = {str(k).lower(): v for k, v in cast("dict[object, object]", data).items()}
        notify: Any = values.pop("notify", None) or {}
        if not isinstance(notify, dict):
            collector.problem(line, "notify: expected a mapping (interval, types, min_severity, mode, format, enabled)")
            continue
        for key, value in cast("dict[object, object]", notify).items():
            values[str(key).lower()] = value
        collector.add(line, values)
    return collector.result()


def read_orgs_file(path: Path, fmt: str | None = None) -> list[OrgInput]:
    """The organisations of ``path`` (CSV or YAML, by ``fmt`` or the file's suffix); raise on any problem."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ImportProblems([f"{path.name}: larger than {MAX_FILE_BYTES >> 20} MiB"])
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportProblems([f"{path.name}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    except OSError as exc:
        raise ImportProblems([f"{path}: {exc.strerror or exc}"]) from None
    kind = fmt or ("yaml" if path.suffix.lower() in (".yaml", ".yml") else "csv")
    return read_yaml(path, text) if kind == "yaml" else read_csv(path, text)


def names(orgs: Iterable[OrgInput]) -> list[str]:
    return [org.name for org in orgs]
