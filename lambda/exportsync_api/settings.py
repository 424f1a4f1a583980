"""Configuration from the environment, read once and validated (errors name the variable)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = ["MAX_PRESIGN_SECONDS", "ConfigError", "Settings", "load_settings"]

# A presigned URL outlives the key that asked for it: a revoked key's URLs work this long at
# most (CONTRACT §3b).
MAX_PRESIGN_SECONDS = 900


class ConfigError(RuntimeError):
    """The deployment is misconfigured (a server fault, never a client error)."""


@dataclass(frozen=True)
class Settings:
    bucket: str
    table: str
    key_users: Mapping[str, str] = field(default_factory=dict)
    presign_seconds: int = MAX_PRESIGN_SECONDS
    # Concurrent S3/DynamoDB writes per request (and the boto3 connection pool's size).
    workers: int = 16
    # No write of a request starts later than this after the request began (the rest answer
    # "retry"); the function's own remaining time lowers it further.
    write_seconds: int = 18
    users_table: str | None = None  # the user registry; None: key ids stand for their users
    users_cache_seconds: float = 60.0
    # Requests without an API key identity may name their user (the devstack's anonymous mode
    # only): otherwise they are refused with 403 no_identity.
    allow_anonymous: bool = False


_N = TypeVar("_N", int, float)


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Build :class:`Settings` from ``EXPORTSYNC_*`` variables."""
    bucket = environ.get("EXPORTSYNC_BUCKET", "").strip()
    table = environ.get("EXPORTSYNC_TABLE", "").strip()
    if not bucket:
        raise ConfigError("EXPORTSYNC_BUCKET is required")
    if not table:
        raise ConfigError("EXPORTSYNC_TABLE is required")
    return Settings(
        bucket=bucket,
        table=table,
        key_users=_key_users(environ.get("EXPORTSYNC_KEY_USERS", "")),
        presign_seconds=_bounded(
            environ,
            "EXPORTSYNC_PRESIGN_SECONDS",
            Settings.presign_seconds,
            (1, MAX_PRESIGN_SECONDS),
            int,
        ),
        workers=_bounded(environ, "EXPORTSYNC_WORKERS", Settings.workers, (1, 64), int),
        write_seconds=_bounded(
            environ, "EXPORTSYNC_WRITE_SECONDS", Settings.write_seconds, (1, 900), int
        ),
        users_table=environ.get("EXPORTSYNC_USERS_TABLE", "").strip() or None,
        users_cache_seconds=_bounded(
            environ,
            "EXPORTSYNC_USERS_CACHE_SECONDS",
            Settings.users_cache_seconds,
            (0.0, 3600.0),
            float,
        ),
        allow_anonymous=_flag(environ, "EXPORTSYNC_ALLOW_ANONYMOUS"),
    )


def _flag(environ: Mapping[str, str], name: str) -> bool:
    """``1`` is on; unset, empty or ``0`` is off; anything else is a mistake worth a refusal."""
    raw = environ.get(name, "").strip()
    if raw not in ("", "0", "1"):
        raise ConfigError(f"{name} must be 0 or 1")
    return raw == "1"


def _key_users(raw: str) -> dict[str, str]:
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError("EXPORTSYNC_KEY_USERS is not valid JSON") from exc
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
    ):
        raise ConfigError("EXPORTSYNC_KEY_USERS must be a JSON object of strings")
    return value


def _bounded(
    environ: Mapping[str, str],
    name: str,
    default: _N,
    within: tuple[_N, _N],
    parse: Callable[[str], _N],
) -> _N:
    """The number in environ[name], within `within` (inclusive); `default` when unset."""
    raw = environ.get(name, "").strip()
    low, high = within
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number") from exc
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}")
    return value
