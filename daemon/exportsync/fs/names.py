"""File names that are not UTF-8: how they are kept, shown and sent.

A POSIX file name is bytes. Python hands a name that is not valid UTF-8 (``b"\\xff\\xfe.csv"``)
over as text with lone surrogates (``"\\udcff\\udcfe.csv"``, PEP 383), which SQLite, JSON encoders
and terminals refuse. So:

- the spool keeps every path as the bytes the kernel knows (`stored` / `from_stored`): exact, and
  the file can always be opened again;
- logs and `status` show the name with each undecodable byte as ``\\xff`` (`shown`);
- the API receives valid UTF-8, each undecodable byte replaced by U+FFFD (`wire_name`); the server
  reduces names to a safe form anyway, and the content hash keeps the object unique.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["from_stored", "printable", "shown", "stored", "wire_name"]


def stored(path: Path | str) -> bytes:
    """The path's bytes, as the spool keeps them."""
    return os.fsencode(path)


def from_stored(value: bytes | str) -> Path:
    """A spooled path back (rows written before paths were kept as bytes hold text)."""
    return Path(os.fsdecode(value) if isinstance(value, bytes) else value)


def _raw(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that is no escaped byte (from JSON "\ud800")
        return text.encode("utf-8", "backslashreplace")


def printable(text: str) -> str:
    """`text` as valid UTF-8: an undecodable byte becomes ``\\xff``; valid text is unchanged."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _raw(text).decode("utf-8", "backslashreplace")
    return text


def shown(path: Path | str) -> str:
    """A path for logs and status output."""
    return printable(str(path))


def wire_name(path: Path) -> str:
    """The file name sent to the API: valid UTF-8 whatever the bytes on disk."""
    return _raw(path.name).decode("utf-8", "replace")
