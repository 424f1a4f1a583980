"""Service files for this machine: a systemd unit (system or user) or a launchd plist.

The systemd unit is rendered by `systemd_unit`, the values in it checked by `values` (both
re-exported here). Rendering is pure; `install`/`uninstall` write or remove the file atomically and
return the commands the operator runs next (this module never runs systemctl or launchctl itself).
`root` prefixes every path written, for tests and packaging (like DESTDIR).

Stopping: systemd sends SIGTERM to the main process only (KillMode=mixed) and the daemon drains;
after TimeoutStopSec it SIGKILLs what is left. A delivery cut short is safe: the spool is durable
and a repeated upload is answered "duplicate".
"""

from __future__ import annotations

import os
import plistlib
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from exportsync.config import SYSTEM_STATE_DIR, user_state_home
from exportsync.fs.durable import atomic_write, fsync_dir
from exportsync.service.systemd_unit import (
    RESTART_DELAY,
    STOP_TIMEOUT,
    SYSTEMD_CREDENTIAL_SOURCE,
    render_systemd,
)
from exportsync.service.values import (
    ServiceError,
    account_name,
    check_paths,
    check_unit_value,
    readable_by,
    system_account,
)

__all__ = [
    "LAUNCHD_AGENT_LABEL",
    "LAUNCHD_DAEMON_LABEL",
    "SYSTEMD_CREDENTIAL_SOURCE",
    "SYSTEMD_UNIT",
    "InstallResult",
    "Manager",
    "ServiceError",
    "check_paths",
    "check_unit_value",
    "default_executable",
    "default_log_dir",
    "default_manager",
    "install",
    "readable_by",
    "render_launchd",
    "render_service",
    "render_systemd",
    "service_path",
    "system_account",
    "uninstall",
]

Manager = Literal["systemd", "launchd"]
SYSTEMD_UNIT = "exportsync.service"
LAUNCHD_AGENT_LABEL = "com.exportsync.agent"
LAUNCHD_DAEMON_LABEL = "com.exportsync.daemon"


@dataclass(frozen=True)
class InstallResult:
    """What `install`/`uninstall` did and what to run next (each command one shell line)."""

    path: Path
    next_commands: tuple[str, ...]
    notes: tuple[str, ...] = ()
    changed: bool = True


def default_manager() -> Manager:
    return "launchd" if sys.platform == "darwin" else "systemd"


def default_executable() -> str:
    """The installed `exportsync` command, as an absolute path (service managers need one)."""
    found = shutil.which("exportsync")
    if found:
        return str(Path(found).absolute())
    return str(Path(sys.executable).absolute().parent / "exportsync")


def default_log_dir(*, user_mode: bool, env: Mapping[str, str] | None = None) -> Path:
    """Where launchd writes the daemon's stdout/stderr."""
    if user_mode:
        return _home(env) / "Library" / "Logs" / "exportsync"
    return Path("/Library/Logs/exportsync")


def service_path(
    manager: Manager, *, user_mode: bool, env: Mapping[str, str] | None = None
) -> Path:
    """The file a service manager reads for exportsync on this machine."""
    environ = os.environ if env is None else env
    if manager == "systemd":
        if user_mode:
            config_home = environ.get("XDG_CONFIG_HOME") or str(_home(env) / ".config")
            return Path(config_home) / "systemd" / "user" / SYSTEMD_UNIT
        return Path("/etc/systemd/system") / SYSTEMD_UNIT
    if user_mode:
        return _home(env) / "Library" / "LaunchAgents" / f"{LAUNCHD_AGENT_LABEL}.plist"
    return Path("/Library/LaunchDaemons") / f"{LAUNCHD_DAEMON_LABEL}.plist"


# --- launchd ----------------------------------------------------------------------------------


def render_launchd(
    *,
    executable: str,
    config_path: Path,
    user_mode: bool,
    log_dir: Path,
    user: str | None = None,
    group: str | None = None,
) -> str:
    """The plist text: run at load, restart after a failure, SIGTERM, then SIGKILL after
    STOP_TIMEOUT.

    A LaunchDaemon (system) runs as `user`/`group` (UserName/GroupName), as a systemd system
    unit does; an agent runs as the logged-in user.
    """
    check_paths(executable, config_path, None, log_dir)
    label = LAUNCHD_AGENT_LABEL if user_mode else LAUNCHD_DAEMON_LABEL
    log_file = str(log_dir / "exportsync.log")
    # launchd has no RestartPreventExitStatus=: it restarts every non-zero exit. A config error
    # (exit 2 elsewhere) exits 0 here, after its log line, so it is not retried every few
    # seconds; launchd starts it again at the next load or login.
    arguments = [executable, "run", "--config", str(config_path), "--config-error-exit", "0"]
    document = {
        "Label": label,
        "ProgramArguments": arguments,
        "RunAtLoad": True,
        # Restart only after a failure; a clean exit (e.g. `launchctl bootout`) stays stopped.
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": RESTART_DELAY,
        "ExitTimeOut": STOP_TIMEOUT,
        "ProcessType": "Background",
        # Not a TTY, so the daemon logs JSON lines here.
        "StandardOutPath": log_file,
        "StandardErrorPath": log_file,
    }
    if not user_mode and user is not None:
        document["UserName"] = account_name(user)
        if group is not None:
            document["GroupName"] = account_name(group)
    return plistlib.dumps(document, sort_keys=False).decode("utf-8")


# --- both -------------------------------------------------------------------------------------


def render_service(
    manager: Manager,
    *,
    executable: str,
    config_path: Path,
    user_mode: bool,
    user: str | None = None,
    group: str | None = None,
    watch_dir: Path | None = None,
    state_dir: Path | None = None,
    log_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """`service print`: the file `install` would write."""
    if manager == "systemd":
        return render_systemd(
            executable=executable,
            config_path=config_path,
            user_mode=user_mode,
            user=user,
            group=group,
            watch_dir=watch_dir,
            state_dir=state_dir,
            state_home=user_state_home(os.environ if env is None else env) if user_mode else None,
        )
    return render_launchd(
        executable=executable,
        config_path=config_path,
        user_mode=user_mode,
        log_dir=log_dir or default_log_dir(user_mode=user_mode, env=env),
        user=user,
        group=group,
    )


def install(
    manager: Manager,
    *,
    executable: str,
    config_path: Path,
    user_mode: bool,
    user: str | None = None,
    group: str | None = None,
    watch_dir: Path | None = None,
    state_dir: Path | None = None,
    log_dir: Path | None = None,
    root: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> InstallResult:
    """Write the service file atomically (under `root` if given); return it and what to run next."""
    log_dir = log_dir or default_log_dir(user_mode=user_mode, env=env)
    text = render_service(
        manager,
        executable=executable,
        config_path=config_path,
        user_mode=user_mode,
        user=user,
        group=group,
        watch_dir=watch_dir,
        state_dir=state_dir,
        log_dir=log_dir,
        env=env,
    )
    target = _under(root, service_path(manager, user_mode=user_mode, env=env))
    changed = not target.exists() or target.read_text(encoding="utf-8") != text
    if changed:
        atomic_write(target, text)  # service managers and admins read it; it holds no secret
    if manager == "launchd":
        # launchd opens the log file but does not create its folder.
        _under(root, log_dir).mkdir(parents=True, exist_ok=True)
        if not user_mode:
            # No StateDirectory= in launchd: the spool's folder, made for the daemon's account
            # (an agent's own folder in ~/Library the daemon creates itself).
            _own_folder(_under(root, state_dir or SYSTEM_STATE_DIR), user, group)
        plist = service_path(manager, user_mode=user_mode, env=env)
        domain = f"gui/{os.getuid()}" if user_mode else "system"
        return InstallResult(
            path=target,
            next_commands=(
                f"{'' if user_mode else 'sudo '}launchctl bootstrap {domain} {_sh(str(plist))}",
            ),
            changed=changed,
        )
    ctl = "systemctl --user" if user_mode else "systemctl"
    notes: tuple[str, ...]
    if user_mode:
        notes = (f"to keep it running while logged out: loginctl enable-linger {_user(env)}",)
    else:
        notes = (
            f"put the API key in {SYSTEMD_CREDENTIAL_SOURCE} (mode 600, owned by root) "
            "before starting; systemd hands it to the service as a credential",
        )
    return InstallResult(
        path=target,
        next_commands=(f"{ctl} daemon-reload", f"{ctl} enable --now {SYSTEMD_UNIT}"),
        notes=notes,
        changed=changed,
    )


def uninstall(
    manager: Manager,
    *,
    user_mode: bool,
    root: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> InstallResult:
    """Remove the service file (and systemd's enable symlink); return what to run next."""
    real = service_path(manager, user_mode=user_mode, env=env)
    target = _under(root, real)
    changed = target.exists()
    target.unlink(missing_ok=True)
    if manager == "launchd":
        label = LAUNCHD_AGENT_LABEL if user_mode else LAUNCHD_DAEMON_LABEL
        domain = f"gui/{os.getuid()}/{label}" if user_mode else f"system/{label}"
        prefix = "" if user_mode else "sudo "
        return InstallResult(target, (f"{prefix}launchctl bootout {domain}",), changed=changed)
    # What `systemctl disable` would remove; gone with the unit, it would dangle.
    wants = "default.target.wants" if user_mode else "multi-user.target.wants"
    link = target.parent / wants / SYSTEMD_UNIT
    if link.is_symlink():
        link.unlink()
        changed = True
    if target.parent.is_dir():
        fsync_dir(target.parent)
    ctl = "systemctl --user" if user_mode else "systemctl"
    return InstallResult(
        path=target,
        next_commands=(f"{ctl} stop {SYSTEMD_UNIT}", f"{ctl} daemon-reload"),
        changed=changed,
    )


# --- helpers ----------------------------------------------------------------------------------


def _own_folder(path: Path, user: str | None, group: str | None) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.geteuid() == 0 and user is not None:
        shutil.chown(path, user, group)


def _under(root: Path | None, path: Path) -> Path:
    return path if root is None else root / path.relative_to(path.anchor)


def _home(env: Mapping[str, str] | None) -> Path:
    environ = os.environ if env is None else env
    return Path(environ.get("HOME") or Path.home())


def _user(env: Mapping[str, str] | None) -> str:
    environ = os.environ if env is None else env
    return environ.get("USER") or environ.get("LOGNAME") or "$USER"


def _sh(word: str) -> str:
    return word if all(ch.isalnum() or ch in "/._-+:@" for ch in word) else f"'{word}'"
