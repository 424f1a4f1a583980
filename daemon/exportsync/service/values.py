"""What may go into a service file: values checked and quoted per systemd.syntax(7), and the
account a system service runs as.

A path is written into a unit as one word: `%` escaped (specifiers), `$` escaped on Exec lines,
double-quoted with backslash escapes when it holds a space, quote or backslash. What no quoting
makes safe — a control character, above all a newline that would start a directive of its own —
is refused.
"""

from __future__ import annotations

import grp
import pwd
import re
from pathlib import Path

__all__ = [
    "ServiceError",
    "account_name",
    "check_paths",
    "check_unit_value",
    "quote_word",
    "readable_by",
    "system_account",
]


class ServiceError(ValueError):
    """A service file cannot be rendered as asked (an unsafe value, no account); `what` names
    the value at fault."""

    def __init__(self, what: str, message: str) -> None:
        super().__init__(f"{what}: {message}")
        self.what = what
        self.message = message


def check_unit_value(what: str, value: str) -> None:
    """Refuse what no quoting makes safe in a unit file: control characters (newline above all)."""
    bad = [ch for ch in value if ord(ch) < 0x20 or ord(ch) == 0x7F]
    if bad:
        raise ServiceError(what, f"contains a control character ({bad[0]!r}); rename it")


def system_account(run_as: str | None, watch_dir: Path) -> tuple[str, str]:
    """(user, group) for a system unit: `run_as`, else the owner of `watch_dir`; never root
    unless `run_as` says root."""
    if run_as is not None:
        account_name(run_as)
        try:
            entry = pwd.getpwnam(run_as) if not run_as.isdigit() else pwd.getpwuid(int(run_as))
        except KeyError:
            raise ServiceError("--run-as", f"no account {run_as!r} on this machine") from None
        if entry.pw_name == "nobody" or entry.pw_uid == NOBODY_UID:
            raise ServiceError(
                "--run-as",
                "'nobody' is shared by unrelated services (whatever else runs as nobody could "
                "read the spool and the key); create a dedicated account: "
                "useradd --system exportsync, give it watch.dir, and pass --run-as exportsync",
            )
        return run_as, _group_name(entry.pw_gid)
    try:
        info = watch_dir.stat()
    except OSError as exc:
        raise ServiceError(
            "watch.dir",
            f"{watch_dir} cannot be read ({exc.strerror}); create it owned by the account "
            "the service should run as, or pass --run-as USER",
        ) from None
    if info.st_uid == 0:
        raise ServiceError(
            "watch.dir",
            f"{watch_dir} is owned by root, and a system service does not run as root by "
            "default: pass --run-as USER (the account that owns the exports), "
            "or --run-as root to mean it",
        )
    try:
        user = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:  # an owner with no name here: systemd takes the number
        user = str(info.st_uid)
    return user, _group_name(info.st_gid)


NOBODY_UID = 65534


def readable_by(path: Path, user: str) -> bool:
    """Whether `user` may read `path` by its mode bits alone: the system unit drops every
    capability, so not even root reads past them. Unknown users and paths count as unreadable."""
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        info = path.stat()
    except (KeyError, OSError):
        return False
    groups = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if entry.pw_name in g.gr_mem}
    if info.st_uid == entry.pw_uid:
        return bool(info.st_mode & 0o400)
    if info.st_gid in groups:
        return bool(info.st_mode & 0o040)
    return bool(info.st_mode & 0o004)


def check_paths(
    executable: str, config_path: Path, watch_dir: Path | None, state_dir: Path | None
) -> None:
    named = {"executable": executable, "--config": str(config_path)}
    named |= {"watch.dir": str(watch_dir)} if watch_dir is not None else {}
    named |= {"state.dir": str(state_dir)} if state_dir is not None else {}
    for what, value in named.items():
        check_unit_value(what, value)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def quote_word(value: str, *, exec_line: bool = False) -> str:
    """Quote one word for a unit file (systemd.syntax(7)): specifiers (%) always, variables ($)
    on Exec lines, and double quotes with C escapes around anything with a space, quote or
    backslash (so no line can end in a continuation backslash)."""
    check_unit_value("path", value)
    text = value.replace("%", "%%")
    if exec_line:
        text = text.replace("$", "$$")
    if any(ch.isspace() or ch in "\"'\\;" for ch in text) or not text:
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def account_name(name: str) -> str:
    """A user or group name for User=/Group=: systemd takes it unquoted, so only plain names."""
    check_unit_value("user", name)
    if not _ACCOUNT_NAME.fullmatch(name):
        raise ServiceError("user", f"{name!r} is not a valid account name")
    return name


_ACCOUNT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}|[0-9]{1,10}")
