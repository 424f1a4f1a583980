"""How `exportsync run` hears signals: handlers only record them; the main thread acts on them.

Two traps this avoids. Python runs a handler on the main thread between two bytecodes, so a
handler that takes a lock (`threading.Event.set`) deadlocks when it interrupts code holding that
lock, another handler's included: a SIGTERM that lands during the SIGUSR1 handler's `set()` never
returned. And the kernel may hand a process signal to a worker thread while the main thread sleeps
in a lock wait, which the signal then does not interrupt. Here each handler appends the signal
number to a deque (no lock), and the main thread sleeps in `select()` on the pipe that CPython's
C-level handler writes to (`signal.set_wakeup_fd`), so it wakes whichever thread took the signal.
"""

from __future__ import annotations

import os
import select
import signal
from collections import deque
from contextlib import suppress
from types import FrameType

__all__ = ["SignalInbox"]


class SignalInbox:
    """Signals recorded for the main thread, and the worker's word that the loop has ended."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._pending: deque[int] = deque()
        self._previous_fd: int | None = None
        self.finished = False

    def listen(self, *signums: int) -> None:
        """Record these signals from now on (main thread only)."""
        if self._previous_fd is None:
            self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        for signum in signums:
            signal.signal(signum, self._record)

    def _record(self, signum: int, _frame: FrameType | None) -> None:
        self._pending.append(signum)

    def finish(self) -> None:
        """The loop has ended (any thread): `wait` returns."""
        self.finished = True
        with suppress(OSError):  # a full pipe already holds a wake-up
            os.write(self._write, b"\0")

    def wait(self, timeout: float | None = None) -> list[int]:
        """The signals recorded since the last call, in order; blocks until there is one, the
        loop has ended, or `timeout` passed (then the list may be empty). Main thread only."""
        while not self._pending and not self.finished:
            ready, _, _ = select.select([self._read], [], [], timeout)
            with suppress(BlockingIOError):
                os.read(self._read, 4096)
            if not ready:
                break
        taken: list[int] = []
        while self._pending:
            taken.append(self._pending.popleft())
        return taken

    def close(self) -> None:
        if self._previous_fd is not None:
            signal.set_wakeup_fd(self._previous_fd)
            self._previous_fd = None
        os.close(self._read)
        os.close(self._write)
