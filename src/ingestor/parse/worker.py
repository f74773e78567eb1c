"""The parse worker: a separate process that turns report files into COPY batches.

Parsing, normalising and hashing cost Python about as much CPU per row as PostgreSQL spends storing it.
In a thread they would share the GIL with the connection that feeds PostgreSQL, which then waits for the
GIL after every network round trip: measured on a 2-core machine, that cost a third of the throughput
(see the README, "Performance"). In a process of its own the parser runs on one core while PostgreSQL
runs on the other.

The worker is ``python -m ingestor.parse.worker``, started on a thread's first file and reused for its
every later one (each loading thread has its own); it reads requests on stdin and writes framed pickles
on stdout (``multiprocessing.connection``
framing over plain pipes: no multiprocessing start method, no re-import of the caller's main module).
For each request, ``(path, report, prefix, batch_rows)``, it sends each
:class:`~ingestor.parse.batches.Batch`, then the file's :class:`~ingestor.parse.batches.LoadStats` (or a
:class:`WorkerFailure`). The pipe's capacity bounds memory: the worker blocks until the loader has taken
the previous batch. A load that stops early (a stop request, an error) kills the worker; the next file
starts a new one. A worker whose parent dies sees its stdin close and exits.

The worker gets only the environment a Python interpreter needs (:data:`WORKER_ENVIRONMENT`): never the
database URL or password, the API key or secret, or anything else the service was configured with.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from ingestor.catalog import ReportType
from ingestor.constituents.matcher import Matcher
from ingestor.errors import ReportFileError
from ingestor.parse.batches import Batch, LoadStats, iter_batches

WORKER_ENVIRONMENT = (
    "PATH",
    "HOME",
    "TMPDIR",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSAFEPATH",
    "PYTHONNOUSERSITE",
    "PYTHONUSERBASE",
    "PYTHONPYCACHEPREFIX",
    "PYTHONDONTWRITEBYTECODE",
    "SYSTEMROOT",
)
"""The variables a worker inherits: what locates the interpreter and its packages, nothing else."""


def worker_environment() -> dict[str, str]:
    """This process's environment reduced to :data:`WORKER_ENVIRONMENT`."""
    return {name: os.environ[name] for name in WORKER_ENVIRONMENT if name in os.environ}


@dataclass(frozen=True)
class ParseRequest:
    path: str
    report: ReportType
    prefix: str
    batch_rows: int
    matcher_token: str | None = None
    """The constituents' version to match rows with (None: no matching)."""
    matcher: Matcher | None = None
    """Sent only when the worker does not hold that version yet; the worker keeps the last one."""


@dataclass(frozen=True)
class WorkerFailure:
    """Why the worker could not read a file."""

    message: str


def _peak_rss_kb() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def serve(requests: Connection, replies: Connection) -> None:
    """The worker's loop: one request at a time until the parent closes the pipe."""
    kept: Matcher | None = None
    while True:
        try:
            request: ParseRequest = requests.recv()
        except EOFError:
            return
        if request.matcher is not None:
            kept = request.matcher
        matcher = kept if request.matcher_token is not None and kept and kept.token == request.matcher_token else None
        stats = LoadStats()
        try:
            if request.matcher_token is not None and matcher is None:
                raise RuntimeError("the constituents' matcher was not sent")
            with open(request.path, "rb") as stream:
                batches = iter_batches(stream, request.report, request.prefix, request.batch_rows, stats, matcher)
                for batch in batches:
                    replies.send(batch)
        except Exception as exc:  # reported to the loader, which fails the file with this message
            replies.send(WorkerFailure(f"{type(exc).__name__}: {exc}"))
            continue
        stats.parser_peak_rss_kb = _peak_rss_kb()
        replies.send(stats)


class ParseWorker:
    """The parent's handle on a worker process."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "ingestor.parse.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
            env=worker_environment(),
        )
        self._matcher_token: str | None = None  # the matcher version this worker holds
        assert self._process.stdin is not None and self._process.stdout is not None
        self._requests = Connection(os.dup(self._process.stdin.fileno()), readable=False)
        self._replies = Connection(os.dup(self._process.stdout.fileno()), writable=False)
        self._process.stdin.close()
        self._process.stdout.close()

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    @property
    def pid(self) -> int:
        return self._process.pid

    def parse(
        self, path: Path, report: ReportType, prefix: str, batch_rows: int, matcher: Matcher | None = None
    ) -> Iterator[Batch | LoadStats]:
        """The file's batches in order, then its counts. Stop iterating early only by :meth:`close`.

        Rows are matched to organisations with ``matcher``, which is pickled to the worker only when it
        holds another version.
        """
        token = matcher.token if matcher is not None else None
        send = matcher if token is not None and token != self._matcher_token else None
        self._requests.send(ParseRequest(str(path), report, prefix, batch_rows, token, send))
        if send is not None:
            self._matcher_token = token
        while True:
            try:
                message = self._replies.recv()
            except EOFError:
                raise ReportFileError("the parse worker exited before finishing the file") from None
            if isinstance(message, WorkerFailure):
                raise ReportFileError(f"cannot read the file: {message.message}")
            yield message
            if isinstance(message, LoadStats):
                return

    def close(self) -> None:
        """Stop the worker (at once: it may be in the middle of a file) and reap it."""
        self._requests.close()
        self._replies.close()
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait(timeout=10)


_local = threading.local()
_all: set[ParseWorker] = set()
_all_lock = threading.Lock()


def shared_worker() -> ParseWorker:
    """The calling thread's worker, started on first use (or again after :func:`discard_worker`).

    One per thread: the loader's workers (``dispatch.py``) each parse their own file.
    """
    worker: ParseWorker | None = getattr(_local, "worker", None)
    if worker is None or not worker.alive:
        worker = ParseWorker()
        _local.worker = worker
        with _all_lock:
            _all.add(worker)
    return worker


def discard_worker() -> None:
    """Kill the calling thread's worker, e.g. after a file was abandoned half-way; its next file starts anew."""
    worker: ParseWorker | None = getattr(_local, "worker", None)
    _local.worker = None
    if worker is not None:
        with _all_lock:
            _all.discard(worker)
        worker.close()


def _close_all() -> None:
    with _all_lock:
        workers = list(_all)
        _all.clear()
    for worker in workers:
        worker.close()


atexit.register(_close_all)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the loader's to handle; it stops the worker
    replies = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # a stray print must not corrupt the replies
    serve(Connection(os.dup(0), writable=False), replies)


if __name__ == "__main__":
    # Run as ``python -m``, this file is ``__main__``: its classes (WorkerFailure) would be pickled under that
    # name, which the loader cannot resolve. The module imported under its own name is the one that serves.
    from ingestor.parse import worker

    worker.main()
