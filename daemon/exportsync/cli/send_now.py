"""`exportsync send-now`: the running daemon sends everything waiting now, the reserve included."""

from __future__ import annotations

import argparse
import sys
import time

from exportsync import sendnow
from exportsync.cli.common import EXIT_ERROR, EXIT_OK, countdown, load
from exportsync.clock import SystemClock, iso_utc
from exportsync.config import Config
from exportsync.fs.names import shown
from exportsync.runlock import running_pid, wake_daemon
from exportsync.spool import Spool
from exportsync.wiring import build_ledger
from exportsync.words import plural

__all__ = ["SEND_NOW_WAIT_SECONDS", "command"]


# How long `send-now` waits to see the daemon take its request.
SEND_NOW_WAIT_SECONDS = 15.0


def command(args: argparse.Namespace) -> int:
    config = load(args.config, require_api=False)
    clock = SystemClock()
    pid = running_pid(config.state.dir)
    if pid is None or not Spool.path_in(config.state.dir).exists():
        print(
            f"exportsync send-now: no daemon is running on {shown(config.state.dir)}; start it "
            "('exportsync run', or the service) and it sends what waits by its plan",
            file=sys.stderr,
        )
        return EXIT_ERROR
    with Spool.open(config.state.dir) as spool:
        ledger = build_ledger(config, spool, clock)
        view = ledger.view()
        if not ledger.request_left():
            resets = ledger.resets_at(clock.time())
            wait = countdown(resets - clock.time())
            print(
                f"exportsync send-now: no request left today ({view.used} of {view.limit} "
                f"used); the quota resets {iso_utc(resets)} (in {wait})",
                file=sys.stderr,
            )
            return EXIT_ERROR
        now = clock.time()
        spool.make_due(None, now=now)
        backlog = spool.backlog(
            now,
            inline_max_bytes=config.api.inline_max_bytes,
            max_entries=config.api.batch_max_files,
        )
        if not backlog.items:
            print("nothing is waiting to be sent")
            return EXIT_OK
        sendnow.request(spool, now)
        print(_send_cost(backlog.items, backlog.requests_needed, view.used, view.limit))
    if not wake_daemon(config.state.dir):
        print("exportsync send-now: the daemon could not be signalled", file=sys.stderr)
        return EXIT_ERROR
    return _await_send(config, now)


def _send_cost(items: int, requests: int, used: int, limit: int | None) -> str:
    """`sending 12 items in 1 request (request 5 of 10 today)`."""
    cost = f"sending {plural(items, 'item')} in {plural(requests, 'request')}"
    if limit is None:
        return cost
    first, last = used + 1, min(limit, used + requests)
    which = f"request {first}" if first == last else f"requests {first}-{last}"
    text = f"{cost} ({which} of {limit} today)"
    if used + requests > limit:
        text += f"; {plural(used + requests - limit, 'request')} more must wait for the reset"
    return text


def _await_send(config: Config, asked_at: float) -> int:
    """Until the daemon has acted on the request: a request went since `asked_at`, or the
    daemon withdrew the note (what waited is settled, e.g. failed locally without a request)."""
    deadline = time.monotonic() + SEND_NOW_WAIT_SECONDS
    with Spool.open(config.state.dir) as spool:
        while time.monotonic() < deadline:
            last = spool.last_request_at()
            if (last is not None and last >= asked_at) or sendnow.requested_at(spool) is None:
                print("the daemon has acted on it; 'exportsync status' shows the outcome")
                return EXIT_OK
            time.sleep(0.2)
    print(
        "the daemon has not sent it yet (a request in flight, or the rate limit); it goes next: "
        "'exportsync status' shows when"
    )
    return EXIT_OK
