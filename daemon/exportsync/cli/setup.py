"""`exportsync setup`: first run. Writes a config and its key file, checks them, and offers the
user service."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from exportsync import firstrun
from exportsync.cli import check, service
from exportsync.cli.common import EXIT_OK, load
from exportsync.config import load_config

__all__ = ["command"]


def command(args: argparse.Namespace) -> int:
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
    code = check.run_checks(load(path, require_api=True), probe=args.probe)
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
    return service.manage("install", config_path=path, user_mode=True)
