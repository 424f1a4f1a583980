"""`exportsync run` hears every signal on its main thread, and no handler takes a lock."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from exportsync.signals import SignalInbox

DEADLINE = 10.0


@pytest.fixture
def inbox() -> Iterator[SignalInbox]:
    previous = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGUSR2)}
    box = SignalInbox()
    yield box
    box.close()
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def _sleeping(native_id: int) -> bool:
    stat = Path(f"/proc/self/task/{native_id}/stat").read_text(encoding="ascii")
    return stat.rsplit(")", 1)[1].split()[0] == "S"


@pytest.mark.skipif(sys.platform != "linux", reason="reads the thread's state from /proc")
def test_a_signal_taken_by_another_thread_wakes_the_main_threads_wait(inbox: SignalInbox) -> None:
    """The kernel may hand a process signal to any thread; a main thread asleep in a lock wait
    (`Event.wait()`, as the daemon used) does not run the handler until something else wakes it."""
    inbox.listen(signal.SIGUSR2)
    main_id = threading.get_native_id()

    def signal_this_thread_once_main_sleeps() -> None:
        deadline = time.monotonic() + DEADLINE  # a poll with a deadline, not a sleep-to-wait
        while not _sleeping(main_id) and time.monotonic() < deadline:
            time.sleep(0.01)
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR2)

    other = threading.Thread(target=signal_this_thread_once_main_sleeps)
    other.start()
    taken = inbox.wait(DEADLINE)
    other.join()
    assert taken == [signal.SIGUSR2]


def test_signals_are_recorded_in_order_and_acted_on_outside_the_handler(
    inbox: SignalInbox,
) -> None:
    """A signal that lands while the interrupted code holds a lock only appends to a list:
    a handler that set an Event there (as the wake handler did) deadlocked the daemon."""
    inbox.listen(signal.SIGUSR1, signal.SIGUSR2)
    held = threading.Lock()
    with held:  # what the interrupted code might hold; a handler taking it would never return
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGUSR2)
    assert inbox.wait(DEADLINE) == [signal.SIGUSR1, signal.SIGUSR2]
    assert inbox.wait(0) == []


def test_the_loops_end_ends_the_wait(inbox: SignalInbox) -> None:
    worker = threading.Thread(target=inbox.finish)
    worker.start()
    assert inbox.wait() == []
    worker.join()
    assert inbox.finished
