"""`exportsync status`: the spool and the quota once (a table or `--json`), or live (`--watch`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from functools import partial

from exportsync.cli.common import EXIT_OK, EXIT_USAGE, load
from exportsync.clock import SystemClock
from exportsync.spool import Spool
from exportsync.status import build_status, live_report, render_table
from exportsync.watchview import watch
from exportsync.wiring import build_ledger

__all__ = ["command"]


def command(args: argparse.Namespace) -> int:
    config = load(args.config, require_api=False)
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
