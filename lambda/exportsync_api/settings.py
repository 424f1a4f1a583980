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
    # Concurrent S3/DynamoDB writes per request (and the boto3 connection pool's size).
    workers: int = 16
    # No write of a request starts later than this after the request began (the rest answer
    # "retry"); the function's own remaining time lowers it further.
    write_seconds: int = 18


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
        workers=_bounded("EXPORTSYNC_WORKERS", environ, Settings.workers, 1, 64),
        write_seconds=_bounded("EXPORTSYNC_WRITE_SECONDS", environ, Settings.write_seconds, 1, 900),
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


def _bounded(name: str, environ: Mapping[str, str], default: int, low: int, high: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer") from exc
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}")
    return value
