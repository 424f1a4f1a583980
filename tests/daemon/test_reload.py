"""What a SIGHUP reload changes in place and what it leaves for a restart (`exportsync.reload`)."""

from __future__ import annotations

from pathlib import Path

from exportsync.reload import compare, merged
from support.inprocess import fast_config


def test_api_quota_and_log_level_change_in_place_the_rest_waits_for_a_restart(
    tmp_path: Path,
) -> None:
    old = fast_config(tmp_path)
    new = fast_config(
        tmp_path,
        **{
            "api.api_key": "k-rotated-key",
            "api.url": "https://api.example/prod",
            "quota.daily_requests": 20,
            "quota.quiet_seconds": 5.0,
            "log.level": "debug",
            "watch.dir": str(tmp_path / "elsewhere"),
            "state.dir": str(tmp_path / "other-state"),
            "metrics.listen": "127.0.0.1:9999",
        },
    )
    change = compare(old, new)
    assert set(change.live) == {
        "api.url",
        "api.api_key",
        "quota.daily_requests",
        "quota.quiet_seconds",
        "log.level",
    }
    assert change.restart_needed == ("watch.dir", "state.dir", "metrics.listen")
    assert "k-rotated-key" not in repr(change)
    applied = merged(old, new)
    assert applied.api == new.api
    assert applied.quota == new.quota
    assert applied.log.level == "debug"
    assert applied.watch == old.watch
    assert applied.state == old.state


def test_the_same_config_changes_nothing(tmp_path: Path) -> None:
    change = compare(fast_config(tmp_path), fast_config(tmp_path))
    assert change.live == ()
    assert change.restart_needed == ()
