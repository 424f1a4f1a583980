"""The DAY quota per UTC calendar day, and its ledger in --state-dir."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from exportsync_devstack.clock import FakeClock
from exportsync_devstack.quota import DailyQuota
from exportsync_devstack.state import FileQuotaStore, load_or_create_api_key

_NOON = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()


def test_quota_refuses_past_the_limit_until_utc_midnight() -> None:
    clock = FakeClock(_NOON)
    quota = DailyQuota(2, clock)
    assert [quota.try_consume() for _ in range(3)] == [True, True, False]
    clock.advance(12 * 3600 - 1)  # 23:59:59 UTC
    assert not quota.try_consume()
    clock.advance(1)  # 00:00:00 UTC the next day
    assert quota.try_consume()
    snap = quota.snapshot()
    assert (snap.day, snap.used, snap.limit) == ("2026-03-02", 1, 2)


def test_snapshot_reports_next_utc_midnight() -> None:
    quota = DailyQuota(10, FakeClock(_NOON))
    snap = quota.snapshot()
    assert snap.resets_at == "2026-03-02T00:00:00+00:00"
    assert snap.used == 0


def test_refused_requests_are_not_counted() -> None:
    quota = DailyQuota(1, FakeClock(_NOON))
    assert quota.try_consume()
    assert not quota.try_consume()
    assert quota.snapshot().used == 1


def test_zero_limit_is_unlimited_but_counted() -> None:
    quota = DailyQuota(0, FakeClock(_NOON))
    assert all(quota.try_consume() for _ in range(50))
    assert quota.snapshot().used == 50


def test_file_store_keeps_the_days_count_across_restarts(tmp_path: Path) -> None:
    clock = FakeClock(_NOON)
    first = DailyQuota(3, clock, FileQuotaStore(tmp_path))
    assert first.try_consume()
    assert first.try_consume()
    restarted = DailyQuota(3, clock, FileQuotaStore(tmp_path))
    assert restarted.snapshot().used == 2
    assert restarted.try_consume()
    assert not restarted.try_consume()
    clock.advance(24 * 3600)
    assert DailyQuota(3, clock, FileQuotaStore(tmp_path)).snapshot().used == 0


def test_corrupt_ledger_starts_fresh(tmp_path: Path) -> None:
    (tmp_path / "quota.json").write_text("{not json", encoding="utf-8")
    quota = DailyQuota(3, FakeClock(_NOON), FileQuotaStore(tmp_path))
    assert quota.snapshot().used == 0
    assert quota.try_consume()


def test_api_key_is_random_per_start_unless_state_dir_keeps_it(tmp_path: Path) -> None:
    assert load_or_create_api_key(None) != load_or_create_api_key(None)
    kept = load_or_create_api_key(tmp_path / "state")
    assert len(kept) >= 20
    assert load_or_create_api_key(tmp_path / "state") == kept
    assert (tmp_path / "state" / "api_key").stat().st_mode & 0o077 == 0
