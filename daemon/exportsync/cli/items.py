"""`exportsync retry`, `dismiss` and `enqueue`: items in the spool, changed by hand; the running
daemon is woken to look at them."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from exportsync.cli.common import EXIT_ERROR, EXIT_OK, EXIT_USAGE, describe, load
from exportsync.clock import SystemClock
from exportsync.fs.names import shown
from exportsync.runlock import wake_daemon
from exportsync.spool import Spool
from exportsync.wiring import build_intake
from exportsync.words import plural

__all__ = ["dismiss", "enqueue", "retry"]


def retry(args: argparse.Namespace) -> int:
    if not args.ids and not args.all_failed:
        print("exportsync retry: give item ids or --all-failed", file=sys.stderr)
        return EXIT_USAGE
    config = load(args.config, require_api=False)
    clock = SystemClock()
    with Spool.open(config.state.dir) as spool:
        ids = spool.failed_ids() if args.all_failed else list(args.ids)
        intake = build_intake(config, spool, clock)
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
                print(f"{item_id}: re-examined {shown(item.path)}: " + describe(result))
            else:
                spool.retry([item_id], now=clock.time())
                print(f"{item_id}: pending again ({shown(item.path)})")
            moved += 1
    if moved:
        wake_daemon(config.state.dir)
    print(f"{plural(moved, 'item')} queued again")
    return EXIT_OK if moved or not ids else EXIT_ERROR


def dismiss(args: argparse.Namespace) -> int:
    if not args.ids and not args.all:
        print("exportsync dismiss: give item ids or --all", file=sys.stderr)
        return EXIT_USAGE
    config = load(args.config, require_api=False)
    with Spool.open(config.state.dir) as spool:
        ids = spool.failed_ids() if args.all else list(args.ids)
        dismissed = set(spool.dismiss(ids, now=SystemClock().time()))
    for item_id in ids:
        if item_id not in dismissed:
            print(f"{item_id}: not on the failed list", file=sys.stderr)
    print(f"{plural(len(dismissed), 'failed item')} dismissed")
    return EXIT_OK if dismissed or not ids else EXIT_ERROR


def enqueue(args: argparse.Namespace) -> int:
    config = load(args.config, require_api=False, require_watch=True)
    clock = SystemClock()
    root = Path(os.path.abspath(config.watch.dir))
    status = EXIT_OK
    with Spool.open(config.state.dir) as spool:
        intake = build_intake(config, spool, clock)
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
                print(f"{shown(path)}: {describe(result)}")
    wake_daemon(config.state.dir)
    return status
