"""Files loaded ``INGEST_WORKERS`` at a time.

Each worker is a thread with its own database connection, transaction, spool file and parse worker
process, so that a cycle of many files uses the machine: one file's download and parsing overlap another's
COPY. Two files of the same report type and date never load at the same time: the duplicate probe of the
second must see the rows of the first (they often carry the same rows: the ``-asn`` and ``-geo`` variants).
Otherwise files start in the order given (oldest report date first). With one worker, files load one
after the other in that order, exactly as without threads.

A stop (SIGTERM) or a fatal error in any worker ends the dispatch: no new file starts, the files in flight
finish or are abandoned by their own stop handling, and the first fatal error is raised once all workers
have returned.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import date

from ingestor.catalog import Catalog
from ingestor.sources import FileOutcome, ReportSource


class Dispatch:
    """One dispatch of ``sources`` over ``workers`` threads."""

    def __init__(
        self,
        sources: Sequence[ReportSource],
        process: Callable[[ReportSource], FileOutcome],
        *,
        workers: int,
        catalog: Catalog,
        stop: threading.Event,
        delay: float = 0.0,
    ) -> None:
        self._pending = list(sources)
        self._process = process
        self._workers = max(1, min(workers, len(self._pending)))
        self._catalog = catalog
        self._stop = stop
        self._delay = delay
        self._cond = threading.Condition()
        self._busy: set[tuple[str, date]] = set()
        self._ended = False
        self.outcomes: list[FileOutcome] = []
        """Outcomes in the order the files finished."""
        self.error: BaseException | None = None
        """The first fatal error a worker met."""
        self.on_outcome: Callable[[FileOutcome], None] = lambda outcome: None
        """Called (under the dispatch's lock) as each file finishes."""

    def run(self) -> list[FileOutcome]:
        """Load every source unless stopped or failed; raise the first fatal error."""
        threads = [
            threading.Thread(target=self._work, name=f"ingest-worker-{n + 1}", daemon=True)
            for n in range(self._workers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if self.error is not None:
            raise self.error
        return self.outcomes

    @property
    def stopped(self) -> bool:
        """Whether files were left unloaded because of a stop or a failure."""
        with self._cond:
            return bool(self._pending) and (self._ended or self._stop.is_set())

    def _slice(self, source: ReportSource) -> tuple[str, date]:
        return self._catalog.canonical(source.report_type), source.report_date

    def _next(self) -> ReportSource | None:
        """The first pending source whose report type and date no worker is loading; None when done."""
        with self._cond:
            while True:
                if self._ended or self._stop.is_set() or not self._pending:
                    return None
                for position, source in enumerate(self._pending):
                    key = self._slice(source)
                    if key not in self._busy:
                        self._busy.add(key)
                        del self._pending[position]
                        return source
                self._cond.wait(0.5)

    def _work(self) -> None:
        first = True
        while True:
            if not first and self._delay and self._stop.wait(self._delay):
                return
            source = self._next()
            if source is None:
                return
            first = False
            try:
                outcome = self._process(source)
            except BaseException as exc:  # fatal for the run: end the dispatch, raise it from run()
                with self._cond:
                    self.error = self.error or exc
                    self._ended = True
                    self._busy.discard(self._slice(source))
                    self._cond.notify_all()
                return
            with self._cond:
                self._busy.discard(self._slice(source))
                self.outcomes.append(outcome)
                self.on_outcome(outcome)
                if outcome.status == "interrupted":
                    self._ended = True
                self._cond.notify_all()
