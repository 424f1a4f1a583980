"""`exportsync service (print | install | uninstall) (--system | --user)`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Literal

from exportsync import service
from exportsync.cli.common import EXIT_OK, EXIT_USAGE, load
from exportsync.config import SYSTEM_CONFIG_DIR, SYSTEM_STATE_DIR, Config, default_state_dir
from exportsync.errors import ConfigError

__all__ = ["Action", "command", "manage"]

Action = Literal["print", "install", "uninstall"]


def command(args: argparse.Namespace) -> int:
    return manage(
        args.action,
        config_path=args.config,
        user_mode=bool(args.user),
        launchd=args.launchd,
        run_as=args.run_as,
    )


def manage(
    action: Action,
    *,
    config_path: Path | None,
    user_mode: bool,
    launchd: bool = False,
    run_as: str | None = None,
) -> int:
    """Print, install or uninstall the service for the config at `config_path` (or the one
    found)."""
    manager: service.Manager = "launchd" if launchd else service.default_manager()
    config = load(config_path, require_api=False, require_watch=True)
    if config.path is None:
        raise ConfigError("config", "a service needs a config file: pass --config PATH")
    if run_as is not None and user_mode:
        print("exportsync service: --run-as is for --system services", file=sys.stderr)
        return EXIT_USAGE
    options: dict[str, Any] = {
        "executable": service.default_executable(),
        "config_path": config.path.absolute(),
        "user_mode": user_mode,
    }
    try:
        if not user_mode and action != "uninstall":
            options["user"], options["group"] = service.system_account(run_as, config.watch.dir)
        code = _act(action, manager, config, options)
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


def _act(action: Action, manager: service.Manager, config: Config, options: dict[str, Any]) -> int:
    user_mode = options["user_mode"]
    if action != "uninstall":
        service.check_paths(options["executable"], options["config_path"], config.watch.dir, None)
        _check_state_dir(config, user_mode=user_mode)
    # Only a state.dir the config names needs ReadWritePaths=; otherwise the service uses its
    # StateDirectory= (the path resolved here would be the invoking user's, e.g. root's home).
    state_dir = config.state.dir if "state.dir" in config.explicit else None
    if action == "print":
        print(
            service.render_service(
                manager, **options, watch_dir=config.watch.dir, state_dir=state_dir
            ),
            end="",
        )
        return EXIT_OK
    if action == "install":
        result = service.install(
            manager, **options, watch_dir=config.watch.dir, state_dir=state_dir
        )
    else:
        result = service.uninstall(manager, user_mode=user_mode)
    verb = "wrote" if action == "install" else "removed"
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
