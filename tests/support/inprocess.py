"""A config for running the daemon in-process against a scripted API: fast, nothing lingers."""

from __future__ import annotations

from pathlib import Path

from exportsync.config import Config, load_config

__all__ = ["fast_config"]


def fast_config(tmp_path: Path, **extra: object) -> Config:
    """watch.dir `tmp_path/export` (created), state in `tmp_path/state`, a quick quota and a short
    settle period (a file the start-up scan finds waits for it on the real clock); `extra` adds or
    overrides dotted keys."""
    export = tmp_path / "export"
    export.mkdir(exist_ok=True)
    return load_config(
        None,
        env={},
        overrides={
            "watch.dir": str(export),
            "api.url": "http://127.0.0.1:9/unused",
            "api.api_key": "k-not-used-here",
            "api.user_id": "alice",
            "state.dir": str(tmp_path / "state"),
            "watch.settle_seconds": 0.1,
            "quota.requests_per_second": 50.0,
            "quota.burst": 5,
            "quota.margin_seconds": 0.0,
            "quota.quiet_seconds": 0.0,
            **extra,
        },
    )
