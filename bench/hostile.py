"""Memory and disk on hostile files: a zip bomb, an endless download, one enormous line.

    .venv/bin/python bench/hostile.py                 # all three (a few minutes, up to 4 GiB of disk)
    .venv/bin/python bench/hostile.py --only line     # one of: zip, endless, line

Each case runs the real CLI as a subprocess against an embedded PostgreSQL (and, for downloads, the
simulator in its own process) with the default bounds, while this script samples every 50 ms the RSS of
the CLI's process tree (the ingestor and its parse worker) and the bytes in its spool directory
(``SS_WORK_DIR``). Printed per case: the exit code, the file's fate in the ledger, the peak tree RSS and
the peak spool size.

* ``zip``      ``import`` of a 2 MB zip holding 2 GiB of zeros in a ``.csv`` member
* ``endless``  ``backfill 0`` of a report whose download never ends (chunked, no Content-Length)
* ``line``     ``backfill 0`` of a report with one 1 GiB line between good rows

Before these bounds (the issue's figures): the zip bomb spooled 2.1 GB and reached 4.2 GB RSS, then a
traceback; the endless download spooled 1.5 GB (2.9 GB RSS) and was retried every cycle; the 1 GB line
took 1.9 GB RSS in the parse worker.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ingestor.db.connect import EMBEDDED_SETTINGS  # noqa: E402
from ingestor.db.embedded import EmbeddedPostgres  # noqa: E402
from ingestor.db.migrate import migrate  # noqa: E402

GIB = 1 << 30
GOOD_ROWS = b'"2026-11-20 00:00:01Z","192.0.2.1",443\n"2026-11-20 00:00:02Z","192.0.2.2",443\n'
MORE_ROWS = b'"2026-11-20 00:00:04Z","192.0.2.4",443\n"2026-11-20 00:00:05Z","192.0.2.5",443\n'


def tree_rss_kb(root: int) -> int:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    children.setdefault(int(stat.read().rsplit(")", 1)[1].split()[1]), []).append(int(entry))
            except OSError:
                pass
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            with open(f"/proc/{pid}/status") as status:
                total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return total


def spool_bytes(directory: Path) -> int:
    total = 0
    for path in directory.glob("ss-report-*"):
        with contextlib.suppress(OSError):  # removed meanwhile
            total += path.stat().st_size
    return total


def run_sampled(command: list[str], env: dict[str, str], spool: Path) -> tuple[int, str, int, int, float]:
    """Run the CLI; return its exit code, last stderr line, peak tree RSS (KiB), peak spool bytes, seconds."""
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    peaks = [0, 0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peaks[0] = max(peaks[0], tree_rss_kb(process.pid))
            peaks[1] = max(peaks[1], spool_bytes(spool))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = process.communicate()
    done.set()
    sampler.join()
    lines = [line for line in err.splitlines() if line.startswith("error:")] or err.splitlines()[-1:]
    return process.returncode, (lines[0] if lines else ""), peaks[0], peaks[1], time.monotonic() - started


class Bench:
    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="ssi-bench-hostile-"))
        self.base.chmod(0o755)
        self.server = EmbeddedPostgres(self.base / "pgdata", db_name="postgres", settings=EMBEDDED_SETTINGS)
        self.server.start()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("SS_", "DB_", "DATABASE_"))}
        self.today = datetime.now(UTC).date().isoformat()

    def database(self, name: str) -> str:
        with psycopg.connect(self.server.admin_url(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = make_conninfo(self.server.admin_url(), dbname=name)
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn, viewer_role=None)
        return url

    def spool(self, name: str) -> Path:
        path = self.base / f"spool-{name}"
        path.mkdir()
        path.chmod(0o777)
        return path

    def report(self, case: str, url: str, result: tuple[int, str, int, int, float]) -> None:
        code, last, rss, spooled, seconds = result
        with psycopg.connect(url) as conn:
            files = conn.execute("SELECT status, rows_inserted, rows_rejected, error FROM ss_report_files").fetchall()
        fate = "; ".join(f"{s}, {i} inserted, {r} rejected" + (f": {e[:110]}" if e else "") for s, i, r, e in files)
        print(f"{case:8} exit {code} in {seconds:5.1f} s, peak RSS {rss / 1024:6.0f} MB, peak spool "
              f"{spooled / 2**20:6.0f} MiB; ledger: {fate or 'nothing'}")  # fmt: skip
        if not files:
            print(f"{'':8} stderr: {last[:200]}")

    def zip_bomb(self) -> None:
        url, spool = self.database("hostile_zip"), self.spool("zip")
        bomb = self.base / "deliveries.zip"
        name = f"{self.today}-scan_ssl-org-geo.csv"
        with (
            zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
            archive.open(name, "w", force_zip64=True) as member,
        ):
            member.write(b'"timestamp","ip","port"\n' + GOOD_ROWS)
            block = b"\0" * (64 << 20)
            for _ in range(2 * GIB // len(block)):
                member.write(block)
        print(f"zip      {bomb.stat().st_size / 2**20:.1f} MiB archive, 2 GiB member")
        env = {**self.env, "DATABASE_URL": url, "SS_WORK_DIR": str(spool), "LOG_LEVEL": "WARNING"}
        self.report("zip", url, run_sampled([sys.executable, "-m", "ingestor", "import", str(bomb)], env, spool))

    def simulated(self, case: str, reports: Path | None, faults: list[str]) -> None:
        url, spool = self.database(f"hostile_{case}"), self.spool(case)
        command = [sys.executable, "-m", "ingestor", "simulate", "--port", "0", "--today", self.today, "--days", "1"]
        command += ["--reports-dir", str(reports)] if reports else ["--types", "scan_ssl", "--rows", "100"]
        simulator = subprocess.Popen(
            [*command, *faults], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=self.env
        )
        try:
            assert simulator.stdout is not None
            api = dict(simulator.stdout.readline().strip().split("=", 1) for _ in range(4))
            env = {
                **self.env,
                **api,
                "DATABASE_URL": url,
                "SS_WORK_DIR": str(spool),
                "SS_MAX_RETRIES": "0",
                "LOG_LEVEL": "WARNING",
            }
            self.report(case, url, run_sampled([sys.executable, "-m", "ingestor", "backfill", "0"], env, spool))
        finally:
            simulator.terminate()
            simulator.wait(timeout=30)

    def long_line(self) -> None:
        reports = self.base / "reports"
        reports.mkdir()
        path = reports / f"{self.today}-scan_ssl-org-geo.csv"
        with path.open("wb") as out:
            out.write(b'"timestamp","ip","port"\n' + GOOD_ROWS + b'"2026-11-20 00:00:03Z","')
            block = b"A" * (64 << 20)
            for _ in range(GIB // len(block)):
                out.write(block)
            out.write(b'",443\n' + MORE_ROWS)
        self.simulated("line", reports, [])

    def close(self) -> None:
        self.server.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", choices=("zip", "endless", "line"))
    args = parser.parse_args()
    bench = Bench()
    try:
        if args.only in (None, "zip"):
            bench.zip_bomb()
        if args.only in (None, "endless"):
            bench.simulated("endless", None, ["--endless"])
        if args.only in (None, "line"):
            bench.long_line()
    finally:
        bench.close()


if __name__ == "__main__":
    main()
