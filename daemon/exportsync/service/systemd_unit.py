"""The systemd unit: `Type=notify` with the watchdog, and a sandbox as tight as Python and
inotify allow.

A system unit runs as a named account (never root by default, see `values`) with no
capabilities; `systemd-analyze security` rates it about 1.2. A user unit keeps to the options a
user manager applies without user namespaces (seccomp and no_new_privs).
"""

from __future__ import annotations

import os
from pathlib import Path

from exportsync.config import user_state_home
from exportsync.service.values import account_name, check_paths, quote_word

__all__ = [
    "CONFIG_ERROR_EXIT",
    "RESTART_DELAY",
    "STOP_TIMEOUT",
    "SYSTEMD_CREDENTIAL_SOURCE",
    "render_systemd",
]

SYSTEMD_CREDENTIAL_SOURCE = Path("/etc/exportsync/api_key")
STOP_TIMEOUT = 20  # seconds: TimeoutStopSec / ExitTimeOut
RESTART_DELAY = 5  # seconds: RestartSec / ThrottleInterval
CONFIG_ERROR_EXIT = 2  # README: exit 2 is a config error; restarting only repeats it


def render_systemd(
    *,
    executable: str,
    config_path: Path,
    user_mode: bool,
    user: str | None,
    group: str | None = None,
    watch_dir: Path | None = None,
    state_dir: Path | None = None,
    state_home: Path | None = None,
) -> str:
    """The unit text.

    One state folder for the service and the shell: a system unit's spool is systemd's
    StateDirectory= (/var/lib/exportsync, the default of a config in /etc/exportsync too); a user
    unit sets no StateDirectory= (systemd 252 puts it under $XDG_CONFIG_HOME, newer ones under
    $XDG_STATE_HOME) but pins XDG_STATE_HOME to `state_home`, the value of the shell that
    installed it, so the daemon finds the spool where `exportsync status` looks.

    `watch_dir` (and an explicit `state_dir`) become ReadWritePaths=: the daemon moves or deletes
    delivered files, and everything else is read-only under ProtectSystem=strict. Every value is
    checked (no control characters) and quoted per systemd.syntax(7), so a path can never end a
    line and start a directive of its own.
    """
    check_paths(executable, config_path, watch_dir, state_dir)
    exec_start = " ".join(
        quote_word(arg, exec_line=True) for arg in (executable, "run", "--config", str(config_path))
    )
    mode = "--user" if user_mode else "--system"
    lines = [
        f"# exportsync: rendered by `exportsync service print {mode}`; edit the config, not this.",
        "[Unit]",
        "Description=exportsync: deliver exported files to the exportsync API",
    ]
    if not user_mode:  # the user manager has no network-online.target
        lines += ["Wants=network-online.target", "After=network-online.target"]
    lines += [
        "StartLimitIntervalSec=300",
        "StartLimitBurst=10",
        "",
        "[Service]",
        "# READY=1 after the startup scan, WATCHDOG=1 every WatchdogSec/2, STOPPING=1 on stop.",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={exec_start}",
    ]
    if not user_mode:
        if user is None:
            raise ValueError("a system unit needs the account it runs as")
        lines.append(f"User={account_name(user)}")
        if group is not None:
            lines.append(f"Group={account_name(group)}")
    lines += [
        "WatchdogSec=60",
        "Restart=on-failure",
        f"RestartSec={RESTART_DELAY}",
        "# Exit code 2 is a config error: restarting would only repeat it.",
        f"RestartPreventExitStatus={CONFIG_ERROR_EXIT}",
        "# `systemctl reload exportsync`: SIGHUP reads the config and the API key file again.",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "# SIGTERM goes to the daemon alone and starts a graceful drain; whatever is still",
        "# running after TimeoutStopSec is SIGKILLed (the spool makes that safe).",
        "KillMode=mixed",
        f"TimeoutStopSec={STOP_TIMEOUT}",
        *(_user_state(state_home) if user_mode else _SYSTEM_STATE),
        "UMask=0077",
        # Logs: stdout is not a TTY under systemd, so the daemon writes JSON lines to the journal.
        *_SECCOMP_SANDBOX,
    ]
    if user_mode:
        lines += [
            "# Mount and namespace sandboxing (ProtectSystem=, PrivateTmp=, ProtectClock=...)",
            "# needs unprivileged user namespaces in a user manager and fails the start without",
            "# them, so a user unit keeps to the seccomp-based options above.",
            "# Put the API key in api.api_key_file (chmod 600) or EXPORTSYNC_API_KEY.",
        ]
    else:
        # "-": a watch folder missing at start (a drive not mounted yet) must not fail the
        # namespace setup; the daemon waits for the folder itself.
        write_paths = [f"-{watch_dir}"] if watch_dir is not None else []
        write_paths += [str(state_dir)] if state_dir is not None else []
        lines += [
            "# systemd reads the API key file and hands it over as $CREDENTIALS_DIRECTORY/api_key.",
            f"LoadCredential=api_key:{quote_word(str(SYSTEMD_CREDENTIAL_SOURCE))}",
            "ProtectSystem=strict",
            "ProtectHome=read-only",
        ]
        if write_paths:
            lines += [
                "# The watch folder: delivered files are moved or deleted there (after_upload).",
                "# A folder that appears only after the start stays read-only until a restart.",
                "ReadWritePaths=" + " ".join(quote_word(p) for p in write_paths),
            ]
        lines += _SYSTEM_SANDBOX
    lines += [
        "",
        "[Install]",
        f"WantedBy={'default.target' if user_mode else 'multi-user.target'}",
    ]
    return "\n".join(lines) + "\n"


_SYSTEM_STATE = [
    "# Spool and quota ledger; $STATE_DIRECTORY tells the daemon where it is.",
    "StateDirectory=exportsync",
    "StateDirectoryMode=0700",
]


def _user_state(state_home: Path | None) -> list[str]:
    if state_home is None:
        state_home = user_state_home(os.environ)
    return [
        "# Spool and quota ledger in $XDG_STATE_HOME/exportsync, where commands run in your shell",
        "# look (no StateDirectory=: systemd 252 would put it under ~/.config instead).",
        "Environment=" + quote_word(f"XDG_STATE_HOME={state_home}"),
    ]


# Filters the kernel applies to the process itself (seccomp, no_new_privs): they hold in user
# units too. Python needs no W+X memory; inotify and sockets are in @system-service.
_SECCOMP_SANDBOX = [
    "NoNewPrivileges=yes",
    "LockPersonality=yes",
    "MemoryDenyWriteExecute=yes",
    "RestrictRealtime=yes",
    "RestrictSUIDSGID=yes",
    "RestrictNamespaces=yes",
    "SystemCallArchitectures=native",
    "SystemCallFilter=@system-service",
    "SystemCallFilter=~@privileged @resources",
    "# A call outside the filter fails with EPERM instead of killing the daemon.",
    "SystemCallErrorNumber=EPERM",
    "# AF_UNIX for sd_notify, AF_NETLINK for name resolution, IP for the API.",
    "RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6",
]

# Needs the system manager (mount namespaces, capabilities): an exposure of about 1.2 from
# `systemd-analyze security`, most of the rest being the network access the API needs.
_SYSTEM_SANDBOX = [
    "CapabilityBoundingSet=",
    "AmbientCapabilities=",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "PrivateUsers=yes",
    "PrivateMounts=yes",
    "ProtectProc=invisible",
    "ProcSubset=pid",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "ProtectKernelLogs=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectControlGroups=yes",
    "DevicePolicy=closed",
    "KeyringMode=private",
    "RemoveIPC=yes",
]
