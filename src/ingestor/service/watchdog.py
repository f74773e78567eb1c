"""The shutdown bound: once a stop is requested, the process is gone within ``STOP_TIMEOUT_SECONDS``.

Every command runs under it (``cli/runtime.py``). When the stop comes, ``on_stop`` runs first: it cancels
the statements this process has running on the server (a load waiting for an analyst's lock would
otherwise hold the shutdown until the lock is released). The clean path (abandon the current file, close
the run, release the lock, close the pool, release the embedded server's lease) then normally takes well
under a second. If it overruns, for instance because a network read hangs, the watchdog logs it and ends
the process with :data:`FORCED_EXIT_CODE`.
Nothing is lost then either: PostgreSQL rolls back the open transaction when the connection drops, and
the next start closes the run left ``running`` as ``interrupted``. The embedded server, if any, is
stopped by its supervisor once no process holds a lease (the kernel drops ours when we exit).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

FORCED_EXIT_CODE = 1
"""Exit code when the watchdog had to end the process (the clean path exits 0)."""


def _flush_logs() -> None:
    for handler in logging.getLogger("ingestor").handlers:
        with contextlib.suppress(Exception):  # best effort, right before a forced exit
            handler.flush()


def force_exit(code: int) -> None:
    """End the process now, without running cleanup handlers that may be the ones hanging."""
    _flush_logs()
    os._exit(code)


class ShutdownWatchdog(threading.Thread):
    """Waits for ``stop``; if the process is still alive ``bound`` seconds later, calls ``on_expire``."""

    def __init__(
        self,
        stop: threading.Event,
        bound: float,
        *,
        on_stop: Callable[[], object] | None = None,
        on_expire: Callable[[int], None] = force_exit,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name="shutdown-watchdog", daemon=True)
        self.stop = stop
        self.bound = bound
        self.on_stop = on_stop
        self.on_expire = on_expire
        self.clock = clock
        self.stop_requested_at: float | None = None
        self._done = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):  # woken by a stop, or by disarm() at the end of a command
            if self._done.is_set():
                return
        self.stop_requested_at = self.clock()
        if self._done.is_set():
            return
        if self.on_stop is not None:
            try:
                self.on_stop()
            except Exception:  # the bound below still holds
                log.exception("cancelling the running statements failed")
        if self._done.wait(max(0.0, self.bound - (self.clock() - self.stop_requested_at))):
            return
        log.error(
            "shutdown did not finish within STOP_TIMEOUT_SECONDS=%s s; forcing exit (the open run is closed as"
            " interrupted at the next start)",
            self.bound,
        )
        self.on_expire(FORCED_EXIT_CODE)

    def elapsed(self) -> float | None:
        """Seconds since the stop request, if there was one."""
        if self.stop_requested_at is None:
            return None
        return self.clock() - self.stop_requested_at

    def disarm(self) -> None:
        """The clean path finished: do not fire."""
        self._done.set()
