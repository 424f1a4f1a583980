"""Which paths in the export folder the daemon cares about, and as what.

Matching is on names only (no I/O): the watcher filters events cheaply and tests need no files.

Decisions:
- Case-insensitive on every platform: Windows-style exporters write ``REPORT.CSV`` and macOS folders
  are usually case-insensitive anyway, so ``*.csv`` matches ``x.CSV`` and ``*.tmp`` ignores
  ``x.TMP``.
- Ignore globs win, and they apply to every path component below the root in recursive mode, so
  ``.git/x.csv`` or ``.Trash/x.csv`` are ignored with the default ``.*``.
- Anything under ``root/sent/`` (the ``after_upload = "move"`` target) is never matched.
- Session globs are tested before CSV globs: ``x.session.json`` is a session even if a CSV glob
  would also match it.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["DEFAULT_IGNORE_GLOBS", "PRIVATE_PREFIX", "SENT_DIR", "FileMatcher", "Kind"]

Kind = Literal["csv", "session"]

# Hidden files, temporary names written before a rename, editor backups, and office suites'
# owner-lock files (``~$report.csv`` beside an open ``report.csv``).
DEFAULT_IGNORE_GLOBS: tuple[str, ...] = (".*", "*.tmp", "*.part", "*~", "~$*")

SENT_DIR = "sent"
# The daemon's own short-lived names in the folder (a delivered file set aside before deletion):
# never matched, whatever ignore_globs says.
PRIVATE_PREFIX = ".exportsync-"
"""Sub-folder of the watched root that ``after_upload = "move"`` moves delivered files into."""


def _matches(name: str, globs: tuple[str, ...]) -> bool:
    return _pattern(globs).match(name.lower()) is not None


def _pattern(globs: tuple[str, ...]) -> re.Pattern[str]:
    """All of `globs` as one compiled regular expression (a scan matches 100,000 names)."""
    if not globs:
        return re.compile(r"(?!)")  # matches nothing
    return re.compile("|".join(f"(?:{fnmatch.translate(glob.lower())})" for glob in globs))


@dataclass(frozen=True)
class FileMatcher:
    """Classifies paths below a root by name; defaults are the contract's ``[watch]`` defaults."""

    csv_globs: tuple[str, ...] = ("*.csv",)
    session_globs: tuple[str, ...] = ("*.session.json",)
    ignore_globs: tuple[str, ...] = DEFAULT_IGNORE_GLOBS
    recursive: bool = False
    _ignore: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _session: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _csv: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Config hands over lists; keep the dataclass hashable and immutable.
        for name in ("csv_globs", "session_globs", "ignore_globs"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        # Compiled once: a scan matches every name of a 100,000-file folder.
        object.__setattr__(self, "_ignore", _pattern(self.ignore_globs))
        object.__setattr__(self, "_session", _pattern(self.session_globs))
        object.__setattr__(self, "_csv", _pattern(self.csv_globs))

    def classify(self, root: Path, path: Path) -> Kind | None:
        """The kind of file `path` is, or None when it is not to be delivered (by name alone)."""
        parts = self._relative_parts(root, path)
        if parts is None:
            return None
        if not self.recursive and len(parts) != 1:
            return None
        if len(parts) > 1 and parts[0] == SENT_DIR:
            return None
        if any(_matches(part, self.ignore_globs) for part in parts[:-1]):
            return None
        return self.classify_name(parts[-1])

    def classify_name(self, name: str) -> Kind | None:
        """`classify` for an entry of a folder already known to be watched (see `descend`)."""
        lowered = name.lower()
        if self._ignore.match(lowered) or name.startswith(PRIVATE_PREFIX):
            return None
        if self._session.match(lowered):
            return "session"
        if self._csv.match(lowered):
            return "csv"
        return None

    def descend(self, root: Path, directory: Path) -> bool:
        """Whether a scan should look inside `directory` (a directory below `root`)."""
        parts = self._relative_parts(root, directory)
        if parts is None or not self.recursive:
            return False
        if parts[0] == SENT_DIR:
            return False
        return not any(_matches(part, self.ignore_globs) for part in parts)

    @staticmethod
    def _relative_parts(root: Path, path: Path) -> tuple[str, ...] | None:
        # Lexical only: normpath folds "a/../b" so a ".." cannot smuggle a path out of the root.
        # Strings, not PurePath.relative_to: this runs for every event and every scanned file.
        normal = os.path.normpath(path)
        base = os.path.normpath(root)
        if normal == base:
            return None
        prefix = base if base.endswith(os.sep) else base + os.sep
        if not normal.startswith(prefix):
            return None
        parts = tuple(normal[len(prefix) :].split(os.sep))
        if ".." in parts:
            return None
        return parts
