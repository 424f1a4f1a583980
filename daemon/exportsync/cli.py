"""The `exportsync` command: run, status, retry, enqueue, check, service.

`main(argv) -> int` parses, loads the config once and dispatches; exit codes are 0 for success,
2 for a usage or config error (the message names the key), 1 for anything else.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import shtab

from exportsync import __version__, firstrun, sendnow, service
from exportsync.client import HttpApi
from exportsync.clock import SystemClock, iso_utc
from exportsync.config import (
    SYSTEM_CONFIG_DIR,
    SYSTEM_STATE_DIR,
    Config,
    default_state_dir,
    load_config,
)
from exportsync.configpath import ConfigNotFound, find_config
from exportsync.daemon import Daemon, build_ledger, build_matcher
from exportsync.errors import ConfigError, ExportsyncError
from exportsync.fs.names import shown
from exportsync.intake import Intake
from exportsync.logs import configure_logging, get_logger
from exportsync.metrics import MeteredApi, Metrics, MetricsServer, serve_metrics
from exportsync.probe import probe
from exportsync.reload import Reloader
from exportsync.runlock import WAKE_SIGNAL, RunLock, running_pid, wake_daemon
from exportsync.signals import SignalInbox
from exportsync.spool import RecordResult, Spool
from exportsync.status import build_status, live_report, read_spool, render_table
from exportsync.watchview import watch
from exportsync.words import plural

__all__ = ["main"]

log = get_logger(__name__)

# A first SIGTERM lets the request in flight finish; past this, it is abandoned (the item stays
# `sending` in the spool and is sent again at the next start, where the server answers duplicate).
DRAIN_SECONDS = 8.0
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    config_help = (
        "config file (TOML); default: $EXPORTSYNC_CONFIG, else the user config file that "
        "'setup' writes, else /etc/exportsync/config.toml"
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=config_help)

    parser = argparse.ArgumentParser(
        prog="exportsync",
        description="Watch an export folder and deliver every CSV and session file to the "
        "exportsync API, durably and within its usage plan.",
        epilog="Run 'exportsync COMMAND --help' for a command's options.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"exportsync {__version__}")
    parser.add_argument("--config", type=Path, default=None, help=config_help)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", parents=[common], help="run the daemon in the foreground until SIGTERM/SIGINT"
    )
    run.add_argument("--log-format", choices=["json", "console"], help="override log.format")
    run.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="override log.level"
    )
    run.add_argument(
        "--config-error-exit",
        type=int,
        default=EXIT_USAGE,
        metavar="CODE",
        help="exit code for a config error (default: 2); the launchd plist passes 0, since "
        "launchd restarts every other exit",
    )

    status = commands.add_parser("status", parents=[common], help="show the spool and the quota")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.add_argument(
        "--watch", action="store_true", help="redraw the report every second until Ctrl-C"
    )
    status.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="--watch's pause between redraws (default: %(default)s)",
    )

    retry = commands.add_parser(
        "retry",
        parents=[common],
        help="send failed items again; a pending item in backoff goes at the next send",
    )
    retry.add_argument("ids", nargs="*", type=int, metavar="ID", help="item ids from 'status'")
    retry.add_argument("--all-failed", action="store_true", help="every failed item")

    dismiss = commands.add_parser(
        "dismiss", parents=[common], help="take failed items off the failed list (not sent)"
    )
    dismiss.add_argument("ids", nargs="*", type=int, metavar="ID", help="item ids from 'status'")
    dismiss.add_argument("--all", action="store_true", help="every failed item")

    commands.add_parser(
        "send-now",
        parents=[common],
        help="have the running daemon send everything waiting now, the day's reserve included",
    )

    enqueue = commands.add_parser(
        "enqueue", parents=[common], help="spool files now (they must be inside watch.dir)"
    )
    enqueue.add_argument("paths", nargs="+", type=Path, metavar="PATH")

    check = commands.add_parser(
        "check",
        parents=[common],
        help="validate the config, folders and API address (no request spent without --probe)",
    )
    check.add_argument(
        "--probe",
        action="store_true",
        help="spend one request to prove the API key and print its user",
    )

    setup = commands.add_parser(
        "setup",
        parents=[common],
        help="first run: write a config and key file, check them, offer the user service",
        description="Asks for what no flag gives (on a terminal); writes the config to "
        "--config or the platform's config folder, the key to a 0600 file beside it.",
    )
    setup.add_argument(
        "--api-url", metavar="URL", help="the API's base URL, e.g. https://abc123.execute-api…/prod"
    )
    key = setup.add_mutually_exclusive_group()
    key.add_argument("--api-key-file", metavar="PATH", help="read the API key from this file")
    key.add_argument("--api-key-stdin", action="store_true", help="read the API key from stdin")
    setup.add_argument("--watch-dir", metavar="DIR", help="the export folder (created if missing)")
    setup.add_argument("--user-id", metavar="ID", help="filled into sessions without one")
    setup.add_argument("--yes", action="store_true", help="install the user service, no question")
    setup.add_argument("--no-service", action="store_true", help="do not offer the user service")
    setup.add_argument(
        "--force", action="store_true", help="replace an existing config and its key file"
    )
    setup.add_argument(
        "--probe",
        action="store_true",
        help="spend one request to prove the key and check --user-id against the key's user",
    )

    svc = commands.add_parser(
        "service", parents=[common], help="print, install or uninstall the service definition"
    )
    svc.add_argument("action", choices=["print", "install", "uninstall"])
    scope = svc.add_mutually_exclusive_group(required=True)
    scope.add_argument("--system", action="store_true", help="a system service (root)")
    scope.add_argument("--user", action="store_true", help="a service of the current user")
    svc.add_argument(
        "--launchd", action="store_true", help="a launchd plist (the default on macOS)"
    )
    svc.add_argument(
        "--run-as",
        metavar="USER",
        help="the account a --system service runs as (default: the owner of watch.dir; "
        "root only when named)",
    )
    completion = commands.add_parser(
        "completion", help="print a shell completion script (bash, zsh or fish)"
    )
    completion.add_argument("shell", choices=["bash", "zsh", "fish"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = _COMMANDS[args.command]
    try:
        return handler(args)
    except ConfigNotFound as exc:
        print(f"exportsync: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"exportsync: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ExportsyncError as exc:
        print(f"exportsync: {exc}", file=sys.stderr)
        return EXIT_ERROR


def _load(
    args: argparse.Namespace,
    *,
    require_api: bool,
    require_watch: bool | None = None,
    **overrides: object,
) -> Config:
    # --config, $EXPORTSYNC_CONFIG, the user config file `setup` writes, /etc/exportsync/.
    return load_config(
        find_config(args.config),
        overrides=overrides,
        require_api=require_api,
        require_watch=require_watch,
    )


# -- run ------------------------------------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
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
    config = _load(args, require_api=True, **flags)
    configure_logging(config.log.format, config.log.level)
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
        load=partial(_load, args, require_api=True, **flags),
        api_for=partial(_api_for, metrics=metrics),
        relog=lambda new: configure_logging(new.log.format, new.log.level),
    )
    daemon = Daemon(config, api=_api_for(config, metrics), metrics=metrics, reloader=reloader)
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


def _api_for(config: Config, metrics: Metrics | None) -> HttpApi | MeteredApi:
    """The API client for `config` (at start, and again at each reload)."""
    assert config.api.api_key is not None  # require_api guarantees it
    http = HttpApi(
        config.api.url,
        config.api.api_key.reveal(),
        timeout=config.api.timeout_seconds,
        user_id=config.api.user_id,
    )
    return http if metrics is None else MeteredApi(http, metrics)


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


# -- status, retry, enqueue --------------------------------------------------------------------


def _cmd_status(args: argparse.Namespace) -> int:
    config = _load(args, require_api=False)
    if args.watch:
        if args.json or args.interval <= 0:
            print("exportsync status: --watch takes no --json, and --interval > 0", file=sys.stderr)
            return EXIT_USAGE
        try:
            return watch(partial(live_report, config), sys.stdout, interval=args.interval)
        except BrokenPipeError:
            # The reader went away (`| head`): done. Point stdout at /dev/null so the flush at
            # exit does not raise again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_OK
    clock = SystemClock()
    # A read-only command: where no daemon has run yet, report an empty spool without creating one.
    exists = Spool.path_in(config.state.dir).exists()
    with Spool.open(config.state.dir) if exists else Spool.in_memory() as spool:
        report = build_status(config, spool, build_ledger(config, spool, clock), clock)
    if args.json:
        print(json.dumps(report, indent=None, sort_keys=True))
    else:
        print(render_table(report))
    return EXIT_OK


def _cmd_retry(args: argparse.Namespace) -> int:
    if not args.ids and not args.all_failed:
        print("exportsync retry: give item ids or --all-failed", file=sys.stderr)
        return EXIT_USAGE
    config = _load(args, require_api=False)
    clock = SystemClock()
    with Spool.open(config.state.dir) as spool:
        ids = spool.failed_ids() if args.all_failed else list(args.ids)
        intake = _intake(config, spool, clock)
        moved = 0
        for item_id in ids:
            item = spool.get(item_id)
            if item is not None and item.state == "pending":
                # Waiting out a backoff (a refused key, a 5xx): it goes at the next send.
                spool.make_due([item_id], now=clock.time())
                print(f"{item_id}: goes at the next send ({shown(item.path)})")
                moved += 1
                continue
            if item is None or item.state != "failed":
                what = "no such item" if item is None else f"{item.state}, not failed or pending"
                print(f"{item_id}: {what}", file=sys.stderr)
                continue
            if item.refused:
                # Refused before it was read (a symlink, a fifo): look at the path afresh.
                spool.forget(item_id)
                result = intake.offer(item.path, force=True)
                print(f"{item_id}: re-examined {shown(item.path)}: " + _describe(result))
            else:
                spool.retry([item_id], now=clock.time())
                print(f"{item_id}: pending again ({shown(item.path)})")
            moved += 1
    if moved:
        wake_daemon(config.state.dir)
    print(f"{plural(moved, 'item')} queued again")
    return EXIT_OK if moved or not ids else EXIT_ERROR


def _cmd_dismiss(args: argparse.Namespace) -> int:
    if not args.ids and not args.all:
        print("exportsync dismiss: give item ids or --all", file=sys.stderr)
        return EXIT_USAGE
    config = _load(args, require_api=False)
    with Spool.open(config.state.dir) as spool:
        ids = spool.failed_ids() if args.all else list(args.ids)
        dismissed = set(spool.dismiss(ids, now=SystemClock().time()))
    for item_id in ids:
        if item_id not in dismissed:
            print(f"{item_id}: not on the failed list", file=sys.stderr)
    print(f"{plural(len(dismissed), 'failed item')} dismissed")
    return EXIT_OK if dismissed or not ids else EXIT_ERROR


# How long `send-now` waits to see the daemon take its request.
SEND_NOW_WAIT_SECONDS = 15.0


def _cmd_send_now(args: argparse.Namespace) -> int:
    config = _load(args, require_api=False)
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
            countdown = _countdown(resets - clock.time())
            print(
                f"exportsync send-now: no request left today ({view.used} of {view.limit} "
                f"used); the quota resets {iso_utc(resets)} (in {countdown})",
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


def _countdown(seconds: float) -> str:
    minutes = max(0, int(seconds)) // 60
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _cmd_enqueue(args: argparse.Namespace) -> int:
    config = _load(args, require_api=False, require_watch=True)
    clock = SystemClock()
    root = Path(os.path.abspath(config.watch.dir))
    status = EXIT_OK
    with Spool.open(config.state.dir) as spool:
        intake = _intake(config, spool, clock)
        for path in args.paths:
            full = Path(os.path.abspath(path))
            if root not in full.parents:
                print(f"{shown(path)}: not inside watch.dir ({root})", file=sys.stderr)
                status = EXIT_ERROR
                continue
            if intake.classify(full) is None:
                print(f"{shown(path)}: matches no csv_globs/session_globs (or an ignore_glob)")
                status = EXIT_ERROR
                continue
            result = intake.offer(full, force=True)
            if result is None:
                print(f"{shown(path)}: no such file", file=sys.stderr)
                status = EXIT_ERROR
            else:
                print(f"{shown(path)}: {_describe(result)}")
    wake_daemon(config.state.dir)
    return status


def _intake(config: Config, spool: Spool, clock: SystemClock) -> Intake:
    return Intake(spool, root=config.watch.dir, matcher=build_matcher(config), clock=clock)


def _describe(result: RecordResult | None) -> str:
    if result is None:
        return "gone, or not a file exportsync delivers"
    item = result.item
    if item.state == "failed":
        return f"item {item.id} failed: {item.last_error}"
    verb = "queued as" if result.created else "already spooled as"
    return f"{verb} item {item.id} ({item.state})"


# -- check, service ------------------------------------------------------------------------------


def _cmd_check(args: argparse.Namespace) -> int:
    config = _load(args, require_api=True)
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
    if not getattr(args, "probe", False):
        report(True, "api key present (not shown)")
        print("note  the API key was not tested; 'exportsync check --probe' spends one request to")
        print("      prove it and name its user")
    elif reachable:
        report(*_probe_key(config))
    print("all checks passed" if not problems else f"{plural(problems, 'check')} failed")
    return EXIT_OK if not problems else EXIT_ERROR


def _probe_key(config: Config) -> tuple[bool | None, str]:
    """One counted request (recorded in the spool's ledger first) that names the key's user."""
    assert config.api.api_key is not None  # require_api guarantees it
    clock = SystemClock()
    with Spool.open(config.state.dir) as spool:
        ledger = build_ledger(config, spool, clock)
        if not ledger.request_left():
            resets = iso_utc(ledger.resets_at(clock.time()))
            return False, f"API key not tested: no request left today (resets {resets})"
        ledger.record_outside_request()
    http = HttpApi(config.api.url, config.api.api_key.reveal(), timeout=config.api.timeout_seconds)
    try:
        result = probe(http)
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


def _cmd_service(args: argparse.Namespace) -> int:
    manager: service.Manager = "launchd" if args.launchd else service.default_manager()
    user_mode = bool(args.user)
    config = _load(args, require_api=False, require_watch=True)
    if config.path is None:
        raise ConfigError("config", "a service needs a config file: pass --config PATH")
    if args.run_as is not None and user_mode:
        print("exportsync service: --run-as is for --system services", file=sys.stderr)
        return EXIT_USAGE
    options: dict[str, Any] = {
        "executable": service.default_executable(),
        "config_path": config.path.absolute(),
        "user_mode": user_mode,
    }
    try:
        if not user_mode and args.action != "uninstall":
            options["user"], options["group"] = service.system_account(
                args.run_as, config.watch.dir
            )
        code = _service_action(args, manager, config, options)
    except service.ServiceError as exc:
        print(f"exportsync service: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if options.get("user") == "nobody":
        # systemd itself notes this on load: nobody is shared with unrelated services.
        print(
            "exportsync service: note: 'nobody' is shared by unrelated services; a dedicated "
            "account (useradd --system exportsync) is safer",
            file=sys.stderr,
        )
    return code


def _check_state_dir(config: Config, *, user_mode: bool) -> None:
    """One state folder: refuse a service whose spool would not be where commands run in a shell
    with the same config look (`config.default_state_dir`)."""
    if "state.dir" in config.explicit:
        return
    in_shell = default_state_dir(config.path, os.environ)
    where = f'[state] dir = "{SYSTEM_STATE_DIR}"'
    if not user_mode and in_shell != SYSTEM_STATE_DIR:
        raise service.ServiceError(
            "state.dir",
            f"a system service keeps its spool in {SYSTEM_STATE_DIR}, but commands run in a "
            f"shell with {config.path} would look in {in_shell}: add {where} to it, or keep "
            f"the config in {SYSTEM_CONFIG_DIR}/",
        )
    if user_mode and in_shell == SYSTEM_STATE_DIR:
        raise service.ServiceError(
            "state.dir",
            f"a config in {SYSTEM_CONFIG_DIR}/ keeps its spool in {SYSTEM_STATE_DIR}, which a "
            "user service cannot write: set state.dir in it, or use your own config "
            "(exportsync setup)",
        )


def _service_action(
    args: argparse.Namespace, manager: service.Manager, config: Config, options: dict[str, Any]
) -> int:
    user_mode = options["user_mode"]
    if args.action != "uninstall":
        service.check_paths(options["executable"], options["config_path"], config.watch.dir, None)
        _check_state_dir(config, user_mode=user_mode)
    # Only a state.dir the config names needs ReadWritePaths=; otherwise the service uses its
    # StateDirectory= (the path resolved here would be the invoking user's, e.g. root's home).
    state_dir = config.state.dir if "state.dir" in config.explicit else None
    if args.action == "print":
        print(
            service.render_service(
                manager, **options, watch_dir=config.watch.dir, state_dir=state_dir
            ),
            end="",
        )
        return EXIT_OK
    if args.action == "install":
        result = service.install(
            manager, **options, watch_dir=config.watch.dir, state_dir=state_dir
        )
    else:
        result = service.uninstall(manager, user_mode=user_mode)
    verb = "wrote" if args.action == "install" else "removed"
    print(f"{verb if result.changed else 'unchanged:'} {result.path}")
    account = options.get("user")
    if account is not None and not service.readable_by(options["config_path"], account):
        print(f"note: {account} cannot read {options['config_path']}; the service will not start")
    for note in result.notes:
        print(f"note: {note}")
    if result.next_commands:
        print("next:")
        for command in result.next_commands:
            print(f"  {command}")
    return EXIT_OK


def _cmd_setup(args: argparse.Namespace) -> int:
    prompter = firstrun.Prompter(interactive=sys.stdin.isatty() and not args.api_key_stdin)
    answers = firstrun.gather(
        prompter,
        api_url=args.api_url,
        api_key=firstrun.read_key("-" if args.api_key_stdin else args.api_key_file),
        watch_dir=args.watch_dir,
        user_id=args.user_id,
    )
    path = Path(os.path.abspath(args.config or firstrun.default_config_path()))
    # Validate as `run` will (the URL's scheme, the key's characters) before writing anything.
    load_config(None, env={}, overrides=firstrun.as_overrides(answers), require_api=True)
    key_file = firstrun.write_setup(answers, path, force=args.force)
    print(f"wrote {path}\nwrote {key_file} (mode 600; the key is not in the config)")
    if not answers.watch_dir.exists():
        answers.watch_dir.mkdir(parents=True)
        print(f"created {answers.watch_dir}")
    args.config = path
    code = _cmd_check(args)
    if answers.user_id and not args.probe:
        print(
            f"note: the key's user was not checked against --user-id {answers.user_id}; "
            "'exportsync check --probe' (or setup --probe) spends one request to check it"
        )
    later = f"exportsync service install --user --config {path}"
    if args.no_service:
        return code
    if code != EXIT_OK:
        print(f"fix the failed check, then: {later}")
        return code
    if not (args.yes or prompter.confirm("Install the user service now?")):
        print(f"to run it as a service later: {later}")
        return code
    scope = {"action": "install", "user": True, "system": False, "launchd": False, "run_as": None}
    return _cmd_service(argparse.Namespace(**(vars(args) | scope)))


def _cmd_completion(args: argparse.Namespace) -> int:
    """The completion script shtab builds from this very parser, so it never drifts."""
    print(shtab.complete(_parser(), shell=args.shell), end="")
    return EXIT_OK


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _cmd_run,
    "status": _cmd_status,
    "retry": _cmd_retry,
    "enqueue": _cmd_enqueue,
    "check": _cmd_check,
    "service": _cmd_service,
    "setup": _cmd_setup,
    "dismiss": _cmd_dismiss,
    "send-now": _cmd_send_now,
    "completion": _cmd_completion,
}
