"""--state-dir: the API key and the quota ledger survive a devstack restart (S3/DynamoDB do not)."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

__all__ = ["FileQuotaStore", "load_or_create_api_key"]

_KEY_FILE = "api_key"
_QUOTA_FILE = "quota.json"


def _write_durably(path: Path, data: bytes, mode: int = 0o600) -> None:
    # write, fsync, rename, fsync the directory: a crash leaves the old or the new file, never half.
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_or_create_api_key(state_dir: Path | None, name: str = _KEY_FILE) -> str:
    """A fresh key per start, or the one kept in state_dir/name (created there on first use)."""
    if state_dir is None:
        return secrets.token_urlsafe(30)
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / name
    if path.exists():
        key = path.read_text(encoding="utf-8").strip()
        if key:
            return key
    key = secrets.token_urlsafe(30)
    _write_durably(path, key.encode("utf-8"))
    return key


class FileQuotaStore:
    """One key's quota ledger as `{"day": "YYYY-MM-DD", "used": n}` in state_dir/name."""

    def __init__(self, state_dir: Path, name: str = _QUOTA_FILE) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self._path = state_dir / name

    def load(self) -> tuple[str, int] | None:
        try:
            raw = json.loads(self._path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        day, used = raw.get("day"), raw.get("used")
        if isinstance(day, str) and isinstance(used, int) and used >= 0:
            return day, used
        return None

    def save(self, day: str, used: int) -> None:
        _write_durably(self._path, json.dumps({"day": day, "used": used}).encode("utf-8"), 0o644)
