"""Object keys, built on the server only: ``uploads/{user}/{sha256}/{safe-filename}``.

Neither the user nor the filename can ever add a path segment, so nothing a client sends leaves
``uploads/{user}/``.
"""

from __future__ import annotations

import re
import unicodedata

from exportsync_wire import ErrorCode

from .errors import bad_request

__all__ = [
    "PREFIX",
    "InvalidKeyPart",
    "object_key",
    "owner",
    "safe_filename",
    "safe_user",
    "user_prefix",
]

PREFIX = "uploads"
_MAX_USER_CHARS = 128
_MAX_FILENAME_BYTES = 200
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_USER_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@+-")
_NAME_PUNCT = frozenset("._-+()@,=")


class InvalidKeyPart(ValueError):
    """A user or digest that cannot form a key (a client error)."""


def safe_user(user: str) -> str:
    """Percent-encode everything outside a small safe set (injective, so users never collide).

    A leading dot is encoded too, so the segment is never ``.`` or ``..``.
    """
    if not user or len(user) > _MAX_USER_CHARS:
        raise InvalidKeyPart("user must be 1 to 128 characters")
    out: list[str] = []
    for index, char in enumerate(user):
        if char in _USER_SAFE and not (index == 0 and char == "."):
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
    return "".join(out)


def safe_filename(name: str) -> str:
    """Reduce a client filename to one harmless path segment (never empty, ``.`` or ``..``)."""
    # NFKC first: fullwidth solidus and friends become the '/' they look like.
    text = unicodedata.normalize("NFKC", name)
    text = re.split(r"[/\\]", text)[-1]
    chars: list[str] = []
    for char in text:
        if unicodedata.category(char)[0] in "CZ" and char != " ":
            continue  # control, format (bidi, zero-width), unassigned, odd separators
        if char.isalnum() or char in _NAME_PUNCT:
            chars.append(char)
        else:
            chars.append("_")
    cleaned = "".join(chars).strip("._ ")
    # Truncation may leave a trailing "_" or ".": strip again, so the result is a fixed point.
    cleaned = _truncate(cleaned).strip("._ ")
    return cleaned or "file"


def _truncate(name: str) -> str:
    if len(name.encode("utf-8")) <= _MAX_FILENAME_BYTES:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext) > 16:
        stem, ext = name, ""
    suffix = f".{ext}" if ext else ""
    budget = _MAX_FILENAME_BYTES - len(suffix.encode("utf-8"))
    short = stem.encode("utf-8")[:budget].decode("utf-8", "ignore")
    return short + suffix


def user_prefix(user: str) -> str:
    """``uploads/{safe-user}/``: every key of this user starts with it."""
    return f"{PREFIX}/{safe_user(user)}/"


def object_key(user: str, sha256_hex: str, filename: str) -> str:
    """The object key for ``filename`` with content digest ``sha256_hex`` owned by ``user``."""
    if not _SHA256_HEX.fullmatch(sha256_hex):
        raise InvalidKeyPart("sha256 must be 64 lowercase hex digits")
    key = f"{user_prefix(user)}{sha256_hex}/{safe_filename(filename)}"
    # Belt and braces: the construction above cannot produce more segments.
    if key.count("/") != 3:
        raise AssertionError("object key has an unexpected shape")
    return key


def owner(key_user: str | None, named: str | None, where: str) -> str:
    """Whose prefix a request writes under: the API key's user, else the one it names in
    ``where``; 400 when neither names a valid user."""
    user = key_user if key_user is not None else named
    if not user:
        raise bad_request(ErrorCode.MISSING_USER, f"no API key identity and no {where}")
    try:
        user_prefix(user)
    except InvalidKeyPart as exc:
        raise bad_request(ErrorCode.INVALID_USER, str(exc)) from None
    return user
