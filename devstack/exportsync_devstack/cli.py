"""`python -m exportsync_devstack`: start everything, print one JSON line, run until a signal."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import IO

import structlog

from exportsync.logs import NamedWriteLoggerFactory, add_logger_name

from .faults import Fault
from .stack import Devstack, DevstackOptions

__all__ = ["main", "parse_args", "run"]

_log = structlog.get_logger(__name__)


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be within [0, 1]")
    return value


def _fault_kinds(text: str) -> tuple[Fault, ...]:
    try:
        kinds = tuple(Fault(name.strip()) for name in text.split(",") if name.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not kinds:
        raise argparse.ArgumentTypeError("name at least one fault kind")
    return kinds


def parse_args(argv: Sequence[str] | None) -> DevstackOptions:
    parser = argparse.ArgumentParser(
        prog="python -m exportsync_devstack",
        description="Local stand-in for the exportsync API: API Gateway emulator + moto server.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=_non_negative_int, default=0, help="0 picks a free port")
    parser.add_argument("--admin-port", type=_non_negative_int, default=0)
    parser.add_argument("--rate", type=_non_negative_float, default=1.0, help="req/s, 0=unlimited")
    parser.add_argument("--burst", type=_non_negative_int, default=1)
    parser.add_argument("--quota", type=_non_negative_int, default=10, help="per UTC day, 0=none")
    parser.add_argument("--fault-rate", type=_share, default=0.0)
    parser.add_argument("--seed", type=int, default=None, help="seed for --fault-rate")
    parser.add_argument(
        "--fault-kinds",
        type=_fault_kinds,
        default=tuple(Fault),
        help=f"comma-separated subset of: {','.join(Fault)}",
    )
    parser.add_argument("--state-dir", type=Path, default=None, help="keeps api key + quota")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--user-id", default="devstack-user", help="the first user's id")
    parser.add_argument(
        "--users", type=_positive_int, default=1, help="users, each with its own API key and plan"
    )
    parser.add_argument(
        "--key-cache-seconds",
        type=_non_negative_float,
        default=1.0,
        help="how long key and registry lookups are cached (a revoked key stops within it)",
    )
    parser.add_argument("--api-key", default=None, help="fixed key (default: random per start)")
    parser.add_argument("--slow-seconds", type=_non_negative_float, default=3.0)
    args = parser.parse_args(argv)
    if args.rate > 0 and args.burst < 1:
        parser.error("--burst must be >= 1 when --rate > 0")
    return DevstackOptions(
        host=args.host,
        port=args.port,
        admin_port=args.admin_port,
        rate=args.rate,
        burst=args.burst,
        quota=args.quota,
        fault_rate=args.fault_rate,
        seed=args.seed,
        fault_kinds=args.fault_kinds,
        state_dir=args.state_dir,
        region=args.region,
        user_id=args.user_id,
        users=args.users,
        key_cache_seconds=args.key_cache_seconds,
        api_key=args.api_key,
        slow_seconds=args.slow_seconds,
    )


def run(options: DevstackOptions, stop: threading.Event, out: IO[str]) -> int:
    """Start, write the ready line to `out`, wait for `stop`, shut down; the exit code."""
    stack = Devstack(options)
    try:
        info = stack.start()
        out.write(json.dumps(info) + "\n")
        out.flush()
        _log.info(
            "devstack_ready",
            api_url=info["api_url"],
            admin_url=info["admin_url"],
            aws_endpoint=info["aws_endpoint"],
            users=len(info.get("users", [info])),
            seed=options.seed,
        )
        stop.wait()
        _log.info("devstack_stopping")
        return 0
    except Exception as exc:
        _log.error("devstack_failed", error_type=type(exc).__name__, error=str(exc))
        return 1
    finally:
        stack.stop()


def _configure_logging() -> None:
    structlog.configure(
        processors=[
            add_logger_name,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        # Keeps the name each module's logger was created with, for add_logger_name.
        logger_factory=NamedWriteLoggerFactory(sys.stderr),
    )
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    # moto's werkzeug logs every S3/DynamoDB call at INFO; that noise hides the gateway's events.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    _configure_logging()
    # Only the ready line may reach stdout: keep a private copy of fd 1 for it and point fd 1 and
    # sys.stdout at stderr, so prints and loggers of the handler and moto cannot pollute it.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            os._exit(1)  # a second signal: give up on the clean stop
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        return run(options, stop, out)
    finally:
        out.close()
