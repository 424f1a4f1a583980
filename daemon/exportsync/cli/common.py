"""What the commands share: exit codes, how a command finds and loads its config, and words."""

from __future__ import annotations

from pathlib import Path

from exportsync.config import Config, load_config
from exportsync.configpath import find_config
from exportsync.spool import RecordResult

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_USAGE", "countdown", "describe", "load"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def load(
    config: Path | None,
    *,
    require_api: bool,
    require_watch: bool | None = None,
    **overrides: object,
) -> Config:
    """The config `--config` names, else the first one found: $EXPORTSYNC_CONFIG, the user
    config file `setup` writes, /etc/exportsync/."""
    return load_config(
        find_config(config),
        overrides=overrides,
        require_api=require_api,
        require_watch=require_watch,
    )


def describe(result: RecordResult | None) -> str:
    """What became of a file offered to the spool."""
    if result is None:
        return "gone, or not a file exportsync delivers"
    item = result.item
    if item.state == "failed":
        return f"item {item.id} failed: {item.last_error}"
    verb = "queued as" if result.created else "already spooled as"
    return f"{verb} item {item.id} ({item.state})"


def countdown(seconds: float) -> str:
    """`3h05m`."""
    minutes = max(0, int(seconds)) // 60
    return f"{minutes // 60}h{minutes % 60:02d}m"
