"""The parts built from a Config, in one place: the daemon and every command take them from here.

The daemon adds its loop's own parts (watcher, deliverer) around these; a command (`status`,
`enqueue`, `retry`, `send-now`, `check --probe`) uses the few it needs, on the same spool.
"""

from __future__ import annotations

from collections.abc import Callable

from exportsync.client import HttpApi
from exportsync.clock import Clock
from exportsync.config import Config
from exportsync.intake import Intake
from exportsync.matcher import FileMatcher
from exportsync.metrics import MeteredApi, Metrics
from exportsync.quota import QuotaLedger
from exportsync.spool import Spool

__all__ = ["build_api", "build_http", "build_intake", "build_ledger", "build_matcher"]


def build_matcher(config: Config) -> FileMatcher:
    return FileMatcher(
        csv_globs=config.watch.csv_globs,
        session_globs=config.watch.session_globs,
        ignore_globs=config.watch.ignore_globs,
        recursive=config.watch.recursive,
    )


def build_ledger(config: Config, spool: Spool, clock: Clock) -> QuotaLedger:
    q = config.quota
    return QuotaLedger(
        spool,
        requests_per_second=q.requests_per_second,
        burst=q.burst,
        daily_requests=q.daily_requests,
        reset_utc=q.reset_utc,
        margin_seconds=q.margin_seconds,
        clock=clock,
    )


def build_intake(
    config: Config,
    spool: Spool,
    clock: Clock,
    *,
    matcher: FileMatcher | None = None,
    on_spooled: Callable[[], None] = lambda: None,
    on_detected: Callable[[], None] = lambda: None,
) -> Intake:
    return Intake(
        spool,
        root=config.watch.dir,
        matcher=matcher or build_matcher(config),
        clock=clock,
        on_spooled=on_spooled,
        on_detected=on_detected,
    )


def build_api(config: Config, metrics: Metrics | None = None) -> HttpApi | MeteredApi:
    """The daemon's API client for `config` (at start, and again at each reload), counted in
    `metrics` when there are any."""
    http = build_http(config)
    return http if metrics is None else MeteredApi(http, metrics)


def build_http(config: Config, *, user_id: bool = True) -> HttpApi:
    """`user_id=False`: without api.user_id (the probe asks whose the key is)."""
    assert config.api.api_key is not None  # require_api guarantees it
    return HttpApi(
        config.api.url,
        config.api.api_key.reveal(),
        timeout=config.api.timeout_seconds,
        user_id=config.api.user_id if user_id else None,
    )
