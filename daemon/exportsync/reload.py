"""SIGHUP: the config file and the API key file read again while the daemon runs.

`[api]` (url, key, user id, timeouts, sizes), `[quota]` and `log.level` take effect in place, at
the next step of the loop (never in the middle of a request). The watch folder, the state folder,
the metrics listener and the log format are fixed at start: a reload that changes them says so
(`restart_needed`) and keeps the running values, so a reload never half-moves the daemon.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from exportsync.client import Api
from exportsync.config import Config

__all__ = ["LIVE", "Change", "Reloader", "compare", "merged"]

# Sections whose every key applies in place; `log.level` applies in place too.
LIVE = ("api", "quota")
_SECTIONS = ("watch", "api", "quota", "state", "log", "metrics")


@dataclass(frozen=True)
class Reloader:
    """How the running daemon gets a new config (`load`), a client for it (`api_for`), and its
    log level applied (`relog`). `exportsync run` builds it from its command line."""

    load: Callable[[], Config]
    api_for: Callable[[Config], Api]
    relog: Callable[[Config], None] = lambda _config: None


@dataclass(frozen=True)
class Change:
    """Dotted keys that differ: `live` take effect now, `restart_needed` only at a restart."""

    live: tuple[str, ...]
    restart_needed: tuple[str, ...]

    def touches(self, prefix: str) -> bool:
        return any(key == prefix or key.startswith(prefix + ".") for key in self.live)


def compare(old: Config, new: Config) -> Change:
    """What a reload from `old` to `new` changes (secrets compared, never shown)."""
    live: list[str] = []
    restart: list[str] = []
    for section in _SECTIONS:
        for key in _differences(section, getattr(old, section), getattr(new, section)):
            chosen = live if section in LIVE or key == "log.level" else restart
            if key not in chosen:
                chosen.append(key)
    return Change(tuple(live), tuple(restart))


def merged(old: Config, new: Config) -> Config:
    """`new` with what only a restart may change kept as it runs."""
    return dataclasses.replace(
        new,
        watch=old.watch,
        state=old.state,
        metrics=old.metrics,
        log=dataclasses.replace(new.log, format=old.log.format),
    )


def _differences(prefix: str, old: object, new: object) -> list[str]:
    if dataclasses.is_dataclass(old) and dataclasses.is_dataclass(new) and type(old) is type(new):
        out: list[str] = []
        for item in dataclasses.fields(old):
            out += _differences(
                f"{prefix}.{item.name}", getattr(old, item.name), getattr(new, item.name)
            )
        return out
    return [] if old == new else [_KEY_NAMES.get(prefix, prefix.replace(".pacing.", "."))]


# Fields whose config key has another name (the log names the key an operator edits).
_KEY_NAMES = {
    "watch.use_polling": "watch.polling",
    "metrics.host": "metrics.listen",
    "metrics.port": "metrics.listen",
}
