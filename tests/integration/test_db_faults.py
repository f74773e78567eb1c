"""Database faults fail a file, not the run, and never hang (real PostgreSQL, real simulator).

A deadlock, a lock timeout or a held table lock fails the one file that met it, with its error in the
ledger, and the next file goes on; a server restarted in the middle of a file (fast or immediate) ends the
run as ``error``, the file is loaded whole by the next run, and no row is lost or doubled.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from ingestor.catalog import load_catalog
from ingestor.db.embedded import EmbeddedPostgres
from ingestor.db.migrate import migrate
from ingestor.parse.csvfile import ReportCsv
from ingestor.parse.normalize import NormalizedRow, RowNormalizer
from ingestor.pipeline import FileOutcome, NullReporter

from fixtures.harness import Harness
from fixtures.pg import make_base_dir, url_with_database
from fixtures.sim import SIM_TODAY, RunningSimulator

MakeSim = Callable[..., RunningSimulator]
TYPES = ("event4_sinkhole", "scan_http", "scan_ssl")
"""Three files of one day, loaded in this order; the middle one meets the fault."""
VICTIM = "scan_http"


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def three_files(make_simulator: MakeSim) -> RunningSimulator:
    return make_simulator(types=TYPES, days=1, rows=40)


def rows_of(sim: RunningSimulator, report_type: str) -> int:
    return sum(r.row_count for r in sim.reports() if r.type == report_type)


def first_row(sim: RunningSimulator, report_type: str) -> NormalizedRow:
    [report] = [r for r in sim.reports() if r.type == report_type]
    with sim.sim.path_of(report).open("rb") as stream:
        reader = ReportCsv(stream)
        normalize = RowNormalizer(load_catalog().get(report_type, reader.header), reader.header)
        row = normalize(next(cells for cells in reader.records() if isinstance(cells, list)))
        reader.close()
    assert isinstance(row, NormalizedRow)
    return row


def ledger(h: Harness) -> dict[str, tuple[str, str | None]]:
    return {t: (s, e) for t, s, e in h.query("SELECT report_type, status, error FROM ss_report_files")}


def loader_waits_for_a_lock(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'shadowserver-ingestor'"
            " AND wait_event_type = 'Lock' AND datname = current_database()"
        ).fetchone()
    return bool(row and row[0])


def test_a_lock_timeout_fails_one_file_of_three_and_the_next_run_loads_it(
    three_files: RunningSimulator, harness: Callable[..., Harness], migrated_db_url: str
) -> None:
    h = harness(three_files, DB_LOCK_TIMEOUT="1")
    with psycopg.connect(migrated_db_url) as other:  # holds the victim's ss_reports row: its upsert must wait
        other.execute(
            "INSERT INTO ss_reports (report_type, report_date, event_count) VALUES (%s, %s, 0)", (VICTIM, SIM_TODAY)
        )
        other.commit()
        other.execute("SELECT 1 FROM ss_reports WHERE report_type = %s FOR UPDATE", (VICTIM,))
        result = h.backfill(0)
    assert result.status == "partial" and result.exit_code == 4
    states = ledger(h)
    assert states[VICTIM][0] == "failed" and "lock timeout" in (states[VICTIM][1] or ""), states
    assert [states[t][0] for t in TYPES if t != VICTIM] == ["loaded", "loaded"]
    loaded = h.query("SELECT report_type, count(*) FROM ss_events GROUP BY 1 ORDER BY 1")
    assert loaded == [(t, rows_of(three_files, t)) for t in TYPES if t != VICTIM]
    audit = h.query("SELECT status, files_loaded, files_failed, error_message FROM ss_ingestion_log")
    assert audit[0][:3] == ("partial", 2, 1) and "lock timeout" in audit[0][3]

    again = h.once()
    assert again.status == "success" and again.totals.files_loaded == 1
    assert h.query("SELECT count(*) FROM ss_events") == [(sum(rows_of(three_files, t) for t in TYPES),)]


def test_a_deadlock_fails_one_file_of_three_with_its_error(
    three_files: RunningSimulator, harness: Callable[..., Harness], migrated_db_url: str
) -> None:
    with psycopg.connect(migrated_db_url, autocommit=True) as admin:  # the loader checks first, after 1 s
        admin.execute(f"ALTER DATABASE {admin.info.dbname} SET deadlock_timeout = '1s'")  # type: ignore[arg-type]
    h = harness(three_files, DB_LOCK_TIMEOUT="30")
    clash = first_row(three_files, VICTIM)
    with psycopg.connect(migrated_db_url) as other:
        other.execute("SET deadlock_timeout = '60s'")
        other.execute(
            "INSERT INTO ss_reports (report_type, report_date, event_count) VALUES (%s, %s, 0)", (VICTIM, SIM_TODAY)
        )
        other.commit()
        other.execute("SELECT 1 FROM ss_reports WHERE report_type = %s FOR UPDATE", (VICTIM,))

        def close_the_cycle() -> None:
            # once the loader (which has inserted the victim's rows) waits for our row lock, insert one of
            # its rows: we now wait for its transaction, it waits for ours
            wait_for(lambda: loader_waits_for_a_lock(migrated_db_url), "the loader to wait for the row lock")
            other.execute(
                "INSERT INTO ss_events (report_type, report_date, raw_data, event_hash) VALUES (%s, %s, '{}', %s)",
                (VICTIM, SIM_TODAY, clash.event_hash),
            )

        closer = threading.Thread(target=close_the_cycle)
        closer.start()
        result = h.backfill(0)
        closer.join(timeout=30)
        other.rollback()
    assert result.status == "partial"
    states = ledger(h)
    assert states[VICTIM][0] == "failed" and "deadlock" in (states[VICTIM][1] or ""), states
    assert [states[t][0] for t in TYPES if t != VICTIM] == ["loaded", "loaded"]
    assert h.query("SELECT count(*) FROM ss_events WHERE report_type = %s", VICTIM) == [(0,)]
    assert h.once().status == "success"
    assert h.query("SELECT count(*) FROM ss_events WHERE report_type = %s", VICTIM) == [(rows_of(three_files, VICTIM),)]


def test_a_held_table_lock_fails_the_files_naming_who_holds_it_then_they_load(
    three_files: RunningSimulator, harness: Callable[..., Harness], migrated_db_url: str
) -> None:
    h = harness(three_files, DB_LOCK_TIMEOUT="1")
    with psycopg.connect(migrated_db_url, application_name="analyst-psql") as analyst:
        analyst.execute("LOCK TABLE ss_events IN ACCESS EXCLUSIVE MODE")
        result = h.backfill(0)
    assert result.status == "error" and result.totals.files_failed == 3
    for status, error in ledger(h).values():
        assert status == "failed" and "lock timeout" in (error or "")
        assert "ss_events AccessExclusiveLock by backend" in (error or "") and "analyst-psql" in (error or ""), error
    again = h.once()
    assert again.status == "success" and again.totals.files_loaded == 3
    assert h.query("SELECT count(*) FROM ss_events") == [(sum(rows_of(three_files, t) for t in TYPES),)]


def test_a_statement_timeout_fails_the_file_not_the_run(
    three_files: RunningSimulator, harness: Callable[..., Harness], migrated_db_url: str
) -> None:
    with psycopg.connect(migrated_db_url, autocommit=True) as admin:  # make the victim's upsert slow
        admin.execute(
            "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF NEW.report_type = 'scan_http' THEN PERFORM pg_sleep(5); END IF; RETURN NEW; END $$"
        )
        admin.execute("CREATE TRIGGER slow BEFORE INSERT ON ss_reports FOR EACH ROW EXECUTE FUNCTION slow()")
    h = harness(three_files, DB_STATEMENT_TIMEOUT="1")
    result = h.backfill(0)
    assert result.status == "partial"
    states = ledger(h)
    assert states[VICTIM][0] == "failed" and "statement timeout" in (states[VICTIM][1] or ""), states


# ---- the server restarted in the middle of a file -------------------------------------------------


class Restarting:
    """A server of its own (the session's is shared), restarted on demand like `pg_ctl restart -m <mode>`.

    Started and restarted by a thread of its own that lives as long as the server: the launcher's server
    dies with the thread that started it, and a restart is asked for from a loading worker's thread.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.server = EmbeddedPostgres(base / "pgdata", db_name="ssi", settings={"fsync": "off"})
        self._requests: queue.Queue[str | None] = queue.Queue()
        self._done: queue.Queue[BaseException | None] = queue.Queue()
        self._keeper = threading.Thread(target=self._keep, daemon=True)
        self._keeper.start()
        self._ask("start")
        self.url = url_with_database(self.server.url, "ssi")

    def _keep(self) -> None:
        while (request := self._requests.get()) is not None:
            try:
                if request != "start":
                    pid = int((self.base / "pgdata" / "postmaster.pid").read_text().split()[0])
                    os.kill(pid, {"fast": signal.SIGINT, "immediate": signal.SIGQUIT}[request])
                    wait_for(lambda pid=pid: _zombie(pid), "the postmaster to stop")
                self.server.start()
                self._done.put(None)
            except BaseException as exc:
                self._done.put(exc)
        self.server.stop()
        self._done.put(None)

    def _ask(self, request: str | None) -> None:
        self._requests.put(request)
        if (error := self._done.get(timeout=60)) is not None:
            raise error

    def restart(self, mode: str) -> None:
        self._ask(mode)

    def close(self) -> None:
        self._ask(None)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] in "ZX"


@pytest.fixture
def restarting() -> Iterator[Restarting]:
    base = make_base_dir("ssi-restart-")
    server = Restarting(base)
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            migrate(conn, viewer_role=None)
        yield server
    finally:
        server.close()
        shutil.rmtree(base, ignore_errors=True)


class RestartMidFile(NullReporter):
    """Restarts the server once the second batch of the victim's file is in the open transaction."""

    def __init__(self, server: Restarting, mode: str) -> None:
        self.server, self.mode = server, mode
        self.batches = 0
        self.current = ""
        self.done = False

    def file_started(self, item_label: str, size_hint: int | None) -> None:
        self.current = item_label

    def rows_loaded(self, rows: int) -> None:
        if VICTIM in self.current and not self.done:
            self.batches += 1
            if self.batches == 2:
                self.done = True
                self.server.restart(self.mode)

    def file_finished(self, outcome: FileOutcome) -> None:
        pass


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_server_restart_mid_file_ends_the_run_and_loses_or_doubles_nothing(
    make_simulator: MakeSim, harness: Callable[..., Harness], restarting: Restarting, mode: str
) -> None:
    sim = make_simulator(types=TYPES, days=1, rows=1000)
    h = harness(sim, restarting.url, INGEST_BATCH_ROWS="100", INGEST_WORKERS="1")  # one file at a time
    reporter = RestartMidFile(restarting, mode)
    h.ingestor.reporter = reporter
    result = h.backfill(0)
    assert reporter.done
    assert result.status == "error" and "unavailable" in (result.error or ""), result.error
    states = ledger(h)
    assert states["event4_sinkhole"][0] == "loaded"
    assert states[VICTIM][0] == "interrupted", states  # recorded on the way out, the server being back
    assert "scan_ssl" not in states  # the run ended before it
    assert h.query("SELECT count(*) FROM ss_events WHERE report_type = %s", VICTIM) == [(0,)]
    audit = h.query("SELECT status FROM ss_ingestion_log")
    assert audit == [("error",)]

    again = h.once()
    assert again.status == "success"
    counted = dict(h.query("SELECT report_type, count(*) FROM ss_events GROUP BY 1"))
    assert counted == {t: rows_of(sim, t) for t in TYPES}
    assert h.query("SELECT count(*) - count(DISTINCT (report_type, report_date, event_hash)) FROM ss_events") == [(0,)]
