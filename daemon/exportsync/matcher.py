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

import os
from dataclasses import dataclass
from fnmatch import fnmatchcase
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
    lowered = name.lower()
    return any(fnmatchcase(lowered, glob.lower()) for glob in globs)


@dataclass(frozen=True)
class FileMatcher:
    """Classifies paths below a root by name; defaults are the contract's ``[watch]`` defaults."""

    csv_globs: tuple[str, ...] = ("*.csv",)
    session_globs: tuple[str, ...] = ("*.session.json",)
    ignore_globs: tuple[str, ...] = DEFAULT_IGNORE_GLOBS
    recursive: bool = False

    def __post_init__(self) -> None:
        # Config hands over lists; keep the dataclass hashable and immutable.
        for name in ("csv_globs", "session_globs", "ignore_globs"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def classify(self, root: Path, path: Path) -> Kind | None:
        """The kind of file `path` is, or None when it is not to be delivered (by name alone)."""
        parts = self._relative_parts(root, path)
        if parts is None:
            return None
        if not self.recursive and len(parts) != 1:
            return None
        if len(parts) > 1 and parts[0] == SENT_DIR:
            return None
        if any(_matches(part, self.ignore_globs) for part in parts):
            return None
        name = parts[-1]
        if name.startswith(PRIVATE_PREFIX):
            return None
        if _matches(name, self.session_globs):
            return "session"
        if _matches(name, self.csv_globs):
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
        normal = Path(os.path.normpath(path))
        try:
            parts = normal.relative_to(os.path.normpath(root)).parts
        except ValueError:
            return None
        if not parts or ".." in parts:
            return None
        return parts
