"""Configuration from the environment, read once and validated (errors name the variable)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["ConfigError", "Settings", "load_settings"]


class ConfigError(RuntimeError):
    """The deployment is misconfigured (a server fault, never a client error)."""


@dataclass(frozen=True)
class Settings:
    bucket: str
    table: str
    key_users: Mapping[str, str] = field(default_factory=dict)
    presign_seconds: int = 900
    users_table: str | None = None  # the user registry; None: key ids stand for their users
    users_cache_seconds: float = 60.0


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
        presign_seconds=_presign_seconds(environ.get("EXPORTSYNC_PRESIGN_SECONDS", "")),
        users_table=environ.get("EXPORTSYNC_USERS_TABLE", "").strip() or None,
        users_cache_seconds=_cache_seconds(environ.get("EXPORTSYNC_USERS_CACHE_SECONDS", "")),
    )


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


def _presign_seconds(raw: str) -> int:
    if not raw.strip():
        return 900
    try:
        seconds = int(raw)
    except ValueError as exc:
        raise ConfigError("EXPORTSYNC_PRESIGN_SECONDS must be an integer") from exc
    # SigV4 presigned URLs are valid for at most 7 days.
    if not 1 <= seconds <= 604800:
        raise ConfigError("EXPORTSYNC_PRESIGN_SECONDS must be between 1 and 604800")
    return seconds


def _cache_seconds(raw: str) -> float:
    if not raw.strip():
        return 60.0
    try:
        seconds = float(raw)
    except ValueError as exc:
        raise ConfigError("EXPORTSYNC_USERS_CACHE_SECONDS must be a number") from exc
    if not 0 <= seconds <= 3600:
        raise ConfigError("EXPORTSYNC_USERS_CACHE_SECONDS must be between 0 and 3600")
    return seconds
