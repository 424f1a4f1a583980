"""The command line: one parser for every command, which `completion` turns into a script too."""

from __future__ import annotations

import argparse
from pathlib import Path

from exportsync import __version__
from exportsync.cli.common import EXIT_USAGE

__all__ = ["build_parser"]


def build_parser() -> argparse.ArgumentParser:
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
