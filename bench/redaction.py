"""What download-id redaction costs as listings grow: registering a listing's ids, and redacting log lines.

    .venv/bin/python bench/redaction.py                       # 1,530, 100,000 and 1,000,000 listed files
    .venv/bin/python bench/redaction.py --items 1530 5000     # other sizes

For each size, a ``reports/list`` answer of that many items (50-character ids, as the simulator's) goes
through ``parse_report_items``, as a cycle's listing does; then its ids are registered again alone
(``Redactor.add_ids``, timed), and a log line naming one id and a URL is redacted ``--lines`` times.
Printed: seconds to register the ids (and to parse the whole listing), microseconds per redacted line,
and the memory Python allocated for the ids (tracemalloc). Each size starts a new listing window, as
each service cycle does, so registered ids do not accumulate.

Before this redactor (one regular expression of every id ever listed, recompiled per id): 1,530 ids
took 162 s to register and 515 µs per redacted line on this machine; a 1M-item listing never finished.
"""

from __future__ import annotations

import argparse
import random
import string
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ingestor.api.client import parse_report_items  # noqa: E402
from ingestor.redaction import REDACTED, REDACTOR, redact  # noqa: E402

ALPHABET = string.ascii_letters + string.digits


def listing(count: int, rng: random.Random) -> list[dict[str, str]]:
    return [
        {
            "id": "".join(rng.choices(ALPHABET, k=50)),
            "type": "scan_ssl",
            "file": f"2026-11-20-scan_ssl-org-{n}.csv",
            "report": "org",
            "timestamp": "2026-11-20",
        }
        for n in range(count)
    ]


def measure(count: int, lines: int, rng: random.Random) -> str:
    answer = listing(count, rng)
    REDACTOR.begin_window()
    REDACTOR.begin_window()  # nothing left from the previous size
    started = time.perf_counter()
    items, _ = parse_report_items(answer)  # registers the ids, as a cycle's listing does
    parsed = time.perf_counter() - started
    ids = [item.id for item in items]
    REDACTOR.begin_window()
    REDACTOR.begin_window()
    started = time.perf_counter()
    REDACTOR.add_ids(ids)
    register = time.perf_counter() - started
    tracemalloc.start()  # again, for memory only: tracemalloc slows allocation down
    REDACTOR.begin_window()
    REDACTOR.begin_window()
    REDACTOR.add_ids(ids)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    secret = ids[len(ids) // 2]
    line = f"2026-11-20-scan_ssl-org-7.csv: download of {secret} failed: HTTP 503 (https://dl.example.org/{secret})"
    assert secret not in redact(line) and REDACTED in redact(line)
    started = time.perf_counter()
    for _ in range(lines):
        redact(line)
    per_line = (time.perf_counter() - started) / lines
    return (
        f"{count:>9,} ids: registered in {register:6.3f} s (whole listing parsed in {parsed:6.2f} s), "
        f"{per_line * 1e6:5.1f} µs per redacted line, {peak / 2**20:5.1f} MiB for the ids"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, nargs="+", default=[1_530, 100_000, 1_000_000])
    parser.add_argument("--lines", type=int, default=10_000, help="log lines redacted per size")
    args = parser.parse_args()
    rng = random.Random(0)
    for count in args.items:
        print(measure(count, args.lines, rng), flush=True)


if __name__ == "__main__":
    main()
