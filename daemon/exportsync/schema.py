"""How a config key is declared: once, as a dataclass field with its default, kind and range.

``timeout_seconds: float = setting(30.0, as_float, Range(above=0))`` is the whole of
``api.timeout_seconds``: `config.py` finds the key (section and field name, or `key=`), parses
the raw value with `parse`, checks `range` and leaves the default where it is written. A parser
takes the raw value and whether it came as text (environment, flags), where ``"yes"`` is a bool
and ``"*.csv, *.tsv"`` a list; a TOML file gives typed values and is held to them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field
from datetime import time
from typing import Any

from exportsync.errors import ConfigError

__all__ = [
    "Parser",
    "Range",
    "Setting",
    "as_bool",
    "as_float",
    "as_globs",
    "as_int",
    "as_path",
    "as_str",
    "as_time",
    "one_of",
    "setting",
    "setting_of",
]

Parser = Callable[[object, bool], Any]


@dataclass(frozen=True)
class Range:
    """Inclusive `low`/`high`, exclusive `above`; `says` is the message ({low}, {high} and
    {above} filled in), by default worded from the bounds."""

    low: float | None = None
    high: float | None = None
    above: float | None = None
    says: str = ""

    def problem(self, value: float) -> str | None:
        fits = (
            (self.low is None or value >= self.low)
            and (self.high is None or value <= self.high)
            and (self.above is None or value > self.above)
        )
        return None if fits else self._text()

    def _text(self) -> str:
        says = self.says or self._worded()
        return says.format(low=_num(self.low), high=_num(self.high), above=_num(self.above))

    def _worded(self) -> str:
        if self.above is not None:
            return "must be > {above}" + (" and at most {high}" if self.high is not None else "")
        if self.high is not None:
            return "must be between {low} and {high}"
        return "must be >= {low}" if self.low == 0 else "must be at least {low}"


def _num(bound: float | None) -> str:
    return "" if bound is None else f"{bound:g}" if isinstance(bound, float) else str(bound)


@dataclass(frozen=True)
class Setting:
    """A field's config key: its parser, its range, the key's name where it is not the field's,
    and `built` where the loader fills the field itself (a required value, or one key feeding
    two fields, like metrics.listen)."""

    parse: Parser
    range: Range | None = None
    key: str | None = None
    built: bool = False


_META = "exportsync.setting"


def setting(
    default: Any = MISSING,
    parse: Parser | None = None,
    range: Range | None = None,
    *,
    key: str | None = None,
    built: bool = False,
) -> Any:
    """A dataclass field that is a config key (no `default`: the loader supplies the value)."""
    meta = {_META: Setting(parse or as_str, range, key, built)}
    if default is MISSING:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


def setting_of(item: Field[Any]) -> Setting | None:
    found = item.metadata.get(_META)
    return found if isinstance(found, Setting) else None


# --- parsers: raw value (and whether it came as text) to the field's type ------------------------


def as_bool(raw: object, textual: bool) -> bool:
    if isinstance(raw, bool):
        return raw
    if textual and isinstance(raw, str):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
    raise ConfigError("", "must be true or false")


def as_str(raw: object, textual: bool) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError("", "must be a non-empty string")
    return raw.strip()


def as_path(raw: object, textual: bool) -> str:
    """Only the check; `config` expands ``$VAR`` and ``~`` and resolves it against the file."""
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError("", "must be a non-empty path string")
    return raw


def as_float(raw: object, textual: bool) -> float:
    if textual and isinstance(raw, str):
        try:
            raw = float(raw)
        except ValueError:
            raise ConfigError("", "must be a number") from None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise ConfigError("", "must be a finite number")
    return float(raw)


def as_int(raw: object, textual: bool) -> int:
    if textual and isinstance(raw, str):
        try:
            raw = int(raw)
        except ValueError:
            raise ConfigError("", "must be a whole number") from None
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ConfigError("", "must be a whole number")
    return raw


def as_globs(raw: object, textual: bool) -> tuple[str, ...]:
    if textual and isinstance(raw, str):
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(raw, list | tuple):
        raise ConfigError("", "must be a list of glob strings")
    globs: list[str] = []
    for item in raw:
        if not isinstance(item, str) or not item:
            raise ConfigError("", "must be a list of non-empty strings")
        if "/" in item or "\\" in item:
            raise ConfigError("", f"{item!r}: globs match file names, not paths")
        globs.append(item)
    return tuple(globs)


def as_time(raw: object, textual: bool) -> time:
    if isinstance(raw, time):  # TOML local time, e.g. reset_utc = 00:00:00
        if raw.tzinfo is not None:
            raise ConfigError("", "must be a UTC wall time without offset")
        return raw
    if isinstance(raw, str):
        match = re.fullmatch(r"(\d{1,2}):(\d{2})", raw.strip())
        if match and int(match[1]) < 24 and int(match[2]) < 60:
            return time(int(match[1]), int(match[2]))
    raise ConfigError("", 'must be "HH:MM" (UTC, 24-hour)')


def one_of(*choices: str) -> Parser:
    def parse(raw: object, textual: bool) -> str:
        if isinstance(raw, str) and raw.strip().lower() in choices:
            return raw.strip().lower()
        raise ConfigError("", "must be one of " + ", ".join(choices))

    return parse
