"""The `exportsync` command: run, status, retry, dismiss, send-now, enqueue, check, setup,
service, completion; one module per command.

`main(argv) -> int` parses, then hands the arguments to the command; exit codes are 0 for
success, 2 for a usage or config error (the message names the key), 1 for anything else. A
command's module is imported when it runs, so `run` carries none of the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

from exportsync.cli.common import EXIT_ERROR, EXIT_USAGE
from exportsync.cli.parser import build_parser
from exportsync.configpath import ConfigNotFound
from exportsync.errors import ConfigError, ExportsyncError

if TYPE_CHECKING:
    from exportsync.cli.run import DRAIN_SECONDS, dispatch_signal

__all__ = ["DRAIN_SECONDS", "dispatch_signal", "main"]

# The command's module and function (`exportsync.cli.<module>.<function>`).
_COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "command"),
    "status": ("status", "command"),
    "retry": ("items", "retry"),
    "dismiss": ("items", "dismiss"),
    "enqueue": ("items", "enqueue"),
    "send-now": ("send_now", "command"),
    "check": ("check", "command"),
    "setup": ("setup", "command"),
    "service": ("service", "command"),
    "completion": ("completion", "command"),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module, function = _COMMANDS[args.command]
    handler = cast(
        "Callable[[argparse.Namespace], int]",
        getattr(importlib.import_module(f"exportsync.cli.{module}"), function),
    )
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


def __getattr__(name: str) -> object:
    # `from exportsync.cli import DRAIN_SECONDS, dispatch_signal` without importing the daemon
    # into every other command.
    if name in ("DRAIN_SECONDS", "dispatch_signal"):
        return getattr(importlib.import_module("exportsync.cli.run"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
