"""Counted words for people: "1 file", "2 files", never "1 files"."""

from __future__ import annotations

__all__ = ["plural"]


def plural(count: int, word: str, many: str | None = None) -> str:
    """`count` and `word`, its plural (`many`, else word + "s") unless count is 1."""
    return f"{count} {word if count == 1 else (many or word + 's')}"
