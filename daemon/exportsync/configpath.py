"""Where every command finds its config, in CONTRACT §3a's order.

1. ``--config PATH``
2. ``$EXPORTSYNC_CONFIG``
3. the platform's user config file, the one ``exportsync setup`` writes
   (Linux: ``$XDG_CONFIG_HOME/exportsync/exportsync.toml``, default ``~/.config/…``;
   macOS: ``~/Library/Application Support/exportsync/exportsync.toml``)
4. ``/etc/exportsync/config.toml``

The first two are taken as given (a named file that is missing is an error of its own, from the
loader); the last two only when they exist. Nothing found is a `ConfigNotFound` (exit 2) listing
what was searched, so `status` never reports built-in defaults as if they were a config.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from exportsync.errors import ConfigError

__all__ = [
    "ENV_CONFIG",
    "SYSTEM_CONFIG",
    "USER_CONFIG_NAME",
    "ConfigNotFound",
    "find_config",
    "user_config_path",
]

ENV_CONFIG = "EXPORTSYNC_CONFIG"
USER_CONFIG_NAME = "exportsync.toml"
SYSTEM_CONFIG = Path("/etc/exportsync/config.toml")


class ConfigNotFound(ConfigError):
    """No config file anywhere a command looks."""

    def __init__(self, searched: list[Path]) -> None:
        listed = "".join(f"\n  {path}" for path in searched)
        super().__init__(
            "config",
            f"no config file found; looked for --config, ${ENV_CONFIG}, then:{listed}\n"
            "run 'exportsync setup' to write one (or pass --config PATH)",
        )
        self.searched = searched


def user_config_path() -> Path:
    """The platform's user config file: what `exportsync setup` writes by default."""
    # Imported here: a daemon started with --config (as a service is) never asks it.
    import platformdirs  # noqa: PLC0415

    return Path(platformdirs.user_config_dir("exportsync", appauthor=False)) / USER_CONFIG_NAME


def find_config(
    flag: Path | None, environ: Mapping[str, str] | None = None, *, system: Path | None = None
) -> Path:
    """The config file a command uses; raises ConfigNotFound when there is none."""
    env = os.environ if environ is None else environ
    if flag is not None:
        return flag
    named = env.get(ENV_CONFIG, "").strip()
    if named:
        return Path(named)
    searched = [user_config_path(), system or SYSTEM_CONFIG]
    for candidate in searched:
        if candidate.is_file():
            return candidate
    raise ConfigNotFound(searched)
