"""`exportsync run`: the daemon in the foreground, until SIGTERM/SIGINT.

Signal handlers only record (`SignalInbox`); the main thread acts on each one: TERM/INT drain,
a second one exits now, HUP reloads, the wake signal looks at the spool, the rest are logged.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from functools import partial

from exportsync.cli.common import EXIT_ERROR, EXIT_OK, EXIT_USAGE, load
from exportsync.config import Config
from exportsync.daemon import Daemon
from exportsync.errors import ConfigError, ExportsyncError
from exportsync.logs import configure_logging, get_logger
from exportsync.metrics import Metrics, MetricsServer, serve_metrics
from exportsync.reload import Reloader
from exportsync.runlock import WAKE_SIGNAL, RunLock
from exportsync.signals import SignalInbox
from exportsync.status import read_spool
from exportsync.wiring import build_api

__all__ = ["DRAIN_SECONDS", "GIL_SWITCH_SECONDS", "IGNORED_SIGNALS", "command", "dispatch_signal"]

log = get_logger(__name__)

# A first SIGTERM lets the request in flight finish; past this, it is abandoned (the item stays
# `sending` in the spool and is sent again at the next start, where the server answers duplicate).
DRAIN_SECONDS = 8.0

# How long a thread may keep the GIL while another waits for it (Python's default is 5 ms). The
# intake gives the GIL up at each system call of a file (stat, open, read, the spool's commit,
# the log line) and, while the delivery thread builds a request, waited up to the whole interval
# to get it back each time: tens of ms per file. At 1 ms a file is spooled within a few.
GIL_SWITCH_SECONDS = 0.001


def command(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except ConfigError as exc:
        if args.config_error_exit == EXIT_USAGE:
            raise
        print(
            f"exportsync: config error: {exc} (exit {args.config_error_exit}: not restarted "
            "until the config is fixed and the service loaded again)",
            file=sys.stderr,
        )
        return int(args.config_error_exit)


def _run(args: argparse.Namespace) -> int:
    flags = {"log.format": args.log_format, "log.level": args.log_level}
    config = load(args.config, require_api=True, **flags)
    configure_logging(config.log.format, config.log.level)
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    for warning in config.warnings:
        log.warning("config_warning", message=warning)
    # Before the lock is taken: once `enqueue`/`retry` can see our pid, their signal must not
    # kill us. What arrives during start-up is acted on once the loop runs.
    inbox = SignalInbox()
    inbox.listen(WAKE_SIGNAL, signal.SIGHUP, *IGNORED_SIGNALS)
    lock = RunLock(config.state.dir)
    lock.acquire()
    metrics = Metrics() if config.metrics.host is not None else None
    reloader = Reloader(
        # The same file, flags and environment as at start; the key file is read afresh.
        load=partial(load, args.config, require_api=True, **flags),
        api_for=partial(build_api, metrics=metrics),
        relog=lambda new: configure_logging(new.log.format, new.log.level),
    )
    daemon = Daemon(config, api=build_api(config, metrics), metrics=metrics, reloader=reloader)
    endpoint = _serve_metrics(config, metrics) if metrics is not None else None
    failure = _run_until_stopped(daemon, inbox)
    inbox.close()
    if endpoint is not None:
        endpoint.close()
    close = getattr(daemon.api, "close", None)
    if callable(close):
        close()
    lock.release()
    if failure:
        exc = failure[0]
        if isinstance(exc, ExportsyncError):
            log.error("daemon_failed", error=str(exc))
            return EXIT_ERROR
        raise exc
    return EXIT_OK


# Signals that neither stop nor reload: logged, and the daemon carries on. (SIGPIPE: a write to
# a closed pipe or socket still fails with EPIPE where it happened, and is handled there.)
IGNORED_SIGNALS = (signal.SIGUSR2, signal.SIGALRM, signal.SIGPIPE)


def dispatch_signal(signum: int, daemon: Daemon) -> None:
    """Act on a signal other than TERM/INT, on the main thread (never inside a handler)."""
    name = signal.Signals(signum).name
    if signum == WAKE_SIGNAL:
        daemon.wake()
    elif signum == signal.SIGHUP:
        log.info(
            "reload_requested",
            signal=name,
            in_flight="unaffected: the config is read again before the next request",
        )
        daemon.request_reload()
    else:
        log.warning("signal_ignored", signal=name, in_flight="unaffected: the daemon carries on")


def _run_until_stopped(daemon: Daemon, inbox: SignalInbox) -> list[BaseException]:
    """Run the loop on a worker thread until it ends or SIGTERM/SIGINT stops it; what it raised.
    The main thread acts on each signal the inbox records. A second stop signal, or a request
    that outlasts the drain, exits the process here."""
    failure: list[BaseException] = []

    def work() -> None:
        try:
            daemon.run()
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)
        finally:
            inbox.finish()

    worker = threading.Thread(target=work, name="exportsync-loop", daemon=True)
    inbox.listen(signal.SIGTERM, signal.SIGINT)
    worker.start()
    drain_until: float | None = None
    while not inbox.finished:
        # No timeout while running (an idle daemon's main thread never wakes); the drain's own.
        timeout = None if drain_until is None else drain_until - time.monotonic()
        if timeout is not None and timeout <= 0:
            log.warning("shutdown_abandoned_request", drain_seconds=DRAIN_SECONDS)
            sys.stderr.flush()
            os._exit(EXIT_OK)  # the spool is consistent; the open request is replayed next start
        for signum in inbox.wait(timeout):
            if signum not in (signal.SIGTERM, signal.SIGINT):
                dispatch_signal(signum, daemon)
            elif drain_until is not None:
                log.warning(
                    "shutdown_forced",
                    signal=signal.Signals(signum).name,
                    in_flight="exiting now: items still sending are sent again at the next "
                    "start (the API answers duplicate); nothing else was in flight",
                )
                sys.stderr.flush()
                os._exit(EXIT_ERROR)
            else:
                drain_until = time.monotonic() + DRAIN_SECONDS
                log.info(
                    "shutdown_requested",
                    signal=signal.Signals(signum).name,
                    in_flight=f"draining: the request out may finish (up to {DRAIN_SECONDS:g} s), "
                    "nothing new is sent; waiting items stay in the spool for the next start; "
                    "send the signal again to exit now",
                )
                daemon.stop()
    worker.join()
    return failure


def _serve_metrics(config: Config, metrics: Metrics) -> MetricsServer:
    assert config.metrics.host is not None  # the caller checked
    try:
        endpoint = serve_metrics(
            metrics, partial(read_spool, config), config.metrics.host, config.metrics.port
        )
    except OSError as exc:
        raise ConfigError(
            "metrics.listen",
            f"cannot listen on {config.metrics.host}:{config.metrics.port}: {exc.strerror or exc}",
        ) from None
    host, port = endpoint.address
    log.info("metrics_listening", url=f"http://{_hostport(host, port)}/metrics")
    return endpoint


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
