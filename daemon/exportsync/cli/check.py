"""`exportsync check [--probe]`: the config, the folders and the API address; with --probe one
counted request proves the key and names its user."""

from __future__ import annotations

import argparse
import os
import socket
from urllib.parse import urlsplit

from exportsync.cli.common import EXIT_ERROR, EXIT_OK, load
from exportsync.clock import SystemClock, iso_utc
from exportsync.config import Config
from exportsync.errors import ExportsyncError
from exportsync.probe import probe as ask_whose_key
from exportsync.spool import Spool
from exportsync.wiring import build_http, build_ledger
from exportsync.words import plural

__all__ = ["command", "run_checks"]


def command(args: argparse.Namespace) -> int:
    return run_checks(load(args.config, require_api=True), probe=args.probe)


def run_checks(config: Config, *, probe: bool) -> int:
    """Print one line per check; exit 0 when none failed (warnings do not count)."""
    problems = 0

    def report(ok: bool | None, what: str) -> None:
        """ok True/False, or None for a warning (counted as no problem)."""
        nonlocal problems
        problems += 0 if ok is not False else 1
        print(f"{({True: 'ok', False: 'FAIL', None: 'warn'})[ok]:<4}  {what}")

    report(True, f"config {config.path}")
    for warning in config.warnings:
        report(None, warning)
    watch = config.watch.dir
    # A missing folder is a waiting state for `run` (it delivers what is spooled and watches
    # for the folder), so it is the one warning above, not a failure too.
    if watch.exists():
        report(os.access(watch, os.R_OK | os.X_OK), f"watch.dir {watch} readable")
        if config.watch.after_upload != "keep":
            report(
                os.access(watch, os.W_OK),
                f"watch.dir writable (after_upload = {config.watch.after_upload})",
            )
    try:
        with Spool.open(config.state.dir) as spool:
            counts = spool.counts()
        report(
            True, f"state.dir {config.state.dir} ({plural(sum(counts.values()), 'item')} spooled)"
        )
    except ExportsyncError as exc:
        report(False, f"state.dir: {exc}")
    reachable, where = _reachable(config.api.url, config.api.timeout_seconds)
    report(reachable, where)
    if not probe:
        report(True, "api key present (not shown)")
        print("note  the API key was not tested; 'exportsync check --probe' spends one request to")
        print("      prove it and name its user")
    elif reachable:
        report(*_probe_key(config))
    print("all checks passed" if not problems else f"{plural(problems, 'check')} failed")
    return EXIT_OK if not problems else EXIT_ERROR


def _probe_key(config: Config) -> tuple[bool | None, str]:
    """One counted request (recorded in the spool's ledger first, in its per-second slot) that
    names the key's user."""
    assert config.api.api_key is not None  # require_api guarantees it
    clock = SystemClock()
    # Built before the slot is taken, so the request follows its count at once.
    http = build_http(config, user_id=False)
    try:
        with Spool.open(config.state.dir) as spool:
            ledger = build_ledger(config, spool, clock)
            if ledger.spend_outside() is None:
                resets = iso_utc(ledger.resets_at(clock.time()))
                return False, f"API key not tested: no request left today (resets {resets})"
            try:
                result = ask_whose_key(http)
            finally:
                ledger.outside_answered()
    finally:
        http.close()
    if result.refused:
        return False, "API key refused (403): check api.api_key_file, then run check --probe"
    if result.user is None:
        return False, f"API key not tested: {result.error}"
    if config.api.user_id is not None and config.api.user_id != result.user:
        print(f"ok    key user: {result.user}")
        return None, (
            f"api.user_id is {config.api.user_id!r} but the key's user is {result.user!r}: "
            f"sessions without a user_id would be refused (user_mismatch)"
        )
    return True, f"key user: {result.user}"


def _reachable(url: str, timeout: float) -> tuple[bool, str]:
    """A TCP connection to the API's host: tells DNS and network faults without a request."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=min(timeout, 10.0)):
            pass
    except OSError as exc:
        return False, f"api.url {host}:{port} unreachable: {exc.strerror or exc}"
    return True, f"api.url {host}:{port} reachable (no request spent)"
