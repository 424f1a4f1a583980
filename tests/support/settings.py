"""Config sections for parts built without a config file (a Deliverer under test)."""

from __future__ import annotations

from typing import Any

from exportsync.config import ApiConfig


def api_settings(user_id: str | None = "alice", **values: Any) -> ApiConfig:
    """The `[api]` section with its defaults: the batch limits and the default session user.
    The URL and key are never used (the test hands the Deliverer its own `Api`)."""
    return ApiConfig(url="http://127.0.0.1:9/unused", api_key=None, user_id=user_id, **values)
