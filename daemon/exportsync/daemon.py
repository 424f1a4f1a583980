"""The daemon: wires watcher, intake, spool, quota ledger and delivery, then loops.

`Daemon.run()` is the loop: recover, watch, scan, say READY, then step and wait until stopped. The
loop itself decides nothing; `Deliverer.step()` does one request's worth of work and says how long
nothing will be due, and the loop sleeps that long or until a new file wakes it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from exportsync.client import Api
from exportsync.clock import Clock, SystemClock, iso_utc
from exportsync.config import Config
from exportsync.delivery import Deliverer, retry_delay
from exportsync.errors import SpoolError
from exportsync.intake import Intake
from exportsync.logs import get_logger
from exportsync.matcher import FileMatcher
from exportsync.metrics import Metrics
from exportsync.notify import Notifier, watchdog_interval
from exportsync.quota import QuotaLedger
from exportsync.spool import Spool
from exportsync.watcher import Watcher

__all__ = ["Daemon", "build_ledger", "build_matcher"]

log = get_logger(__name__)

# The loop counts as healthy while it turned within this long; a request or presigned PUT that
# hangs past it lets systemd's watchdog restart the daemon (the spool makes that safe).
STALL_SECONDS = 900.0
# With nothing due the loop still looks every few seconds (one indexed query), so items that
# `exportsync enqueue` or `retry` put in the spool from another process start soon.
IDLE_WAKE_SECONDS = 5.0


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


class Daemon:
    """One running exportsync. `stop()` may be called from any thread (a signal handler)."""

    def __init__(
        self,
        config: Config,
        *,
        api: Api,
        clock: Clock | None = None,
        notifier: Notifier | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.notifier = notifier or Notifier()
        self.root = Path(os.path.abspath(config.watch.dir))
        self.spool, corrupt = Spool.open_or_replace(config.state.dir, now=self.clock.time())
        self.ledger = build_ledger(config, self.spool, self.clock)
        if corrupt is not None:
            # The day's request count went with it: count the day as used up (no request the
            # usage plan might refuse), and let the start-up scan spool the folder afresh (the
            # server answers `duplicate` for what it already has).
            self.ledger.assume_spent()
            log.error(
                "spool_corrupt",
                moved_to=str(corrupt),
                quota_assumed_used=self.ledger.limit,
                resets_at=iso_utc(self.ledger.resets_at(self.clock.time())),
            )
        self.stopping = threading.Event()
        self._wake = threading.Event()
        self.matcher = build_matcher(config)
        self.intake = Intake(
            self.spool,
            root=self.root,
            matcher=self.matcher,
            clock=self.clock,
            on_spooled=self._wake.set,
            on_detected=metrics.file_detected if metrics is not None else lambda: None,
        )
        self.deliverer = Deliverer(
            spool=self.spool,
            ledger=self.ledger,
            api=api,
            clock=self.clock,
            root=self.root,
            default_user_id=config.api.user_id,
            after_upload=config.watch.after_upload,
            inline_max_bytes=config.api.inline_max_bytes,
            batch_max_files=config.api.batch_max_files,
            linger_seconds=config.api.batch_linger_seconds,
            metrics=metrics,
        )
        self.watcher = Watcher(
            self.root,
            self.matcher,
            self._offer,
            settle_seconds=config.watch.settle_seconds,
            use_polling=config.watch.use_polling,
        )
        self._watchdog_every = watchdog_interval()
        self._tick = self.clock.monotonic()

    def stop(self) -> None:
        """Ask the loop to finish: the request in flight completes, nothing new starts."""
        self.stopping.set()
        self._wake.set()

    def _offer(self, path: Path) -> None:
        try:
            self.intake.offer(path)
        except SpoolError as exc:
            # Disk full or I/O error: the watcher's next rescan offers the file again.
            log.error("spool_write_failed", path=str(path), error=str(exc))
            self.watcher.reconsider(path)
        except Exception as exc:  # the per-item firewall: this file fails, intake goes on
            reason = f"{type(exc).__name__}: {exc}"
            log.error("item_firewalled", path=str(path), error=reason, stage="intake")
            kind = self.intake.classify(path)
            if kind is not None:
                try:
                    self.intake.reject(path, kind, reason)
                except SpoolError:
                    self.watcher.reconsider(path)

    def _recently_written(self, path: Path) -> bool:
        try:
            mtime = os.lstat(path).st_mtime
        except OSError:
            return False  # gone, or unreadable: intake records what it can
        return self.clock.time() - mtime < self.config.watch.settle_seconds

    def run(self) -> None:
        """Run until `stop()`; always leaves the spool consistent."""
        recovered = self.spool.recover(self.clock.time())
        self._count_crashes()
        log.info(
            "daemon_started",
            root=str(self.root),
            state_dir=str(self.config.state.dir),
            recovered=recovered,
        )
        self.watcher.start()
        heartbeat: threading.Thread | None = None
        try:
            for path in self.watcher.scan():
                if self.stopping.is_set():
                    break
                if self._recently_written(path):
                    self.watcher.settle(path)  # may still be being written: wait for it
                else:
                    self._offer(path)
            counts = self.spool.counts()
            quota = self.ledger.snapshot()
            log.info(
                "daemon_ready",
                **counts,
                quota_used=quota.used,
                quota_limit=quota.limit,
                watch_dir_missing=self.watcher.missing,
            )
            # Ready even while the folder is missing: what is spooled is delivered meanwhile, and
            # the watcher arms itself once the folder appears.
            self.notifier.ready(f"watching {self.root}")
            heartbeat = self._start_heartbeat()
            self._loop()
        finally:
            self.stopping.set()
            if heartbeat is not None:
                heartbeat.join()
            self.notifier.stopping()
            self.notifier.close()
            self.watcher.stop()
            self.spool.close()
            log.info("daemon_stopped")

    def _count_crashes(self) -> None:
        """Items the previous run died on while reading or parsing them (poison pills)."""
        for item in self.spool.count_crashes(now=self.clock.time()):
            if item.state == "failed":
                log.error(
                    "item_quarantined", item_id=item.id, path=str(item.path), crashes=item.crashes
                )
            else:
                log.warning(
                    "item_stopped_daemon",
                    item_id=item.id,
                    path=str(item.path),
                    crashes=item.crashes,
                )

    def _loop(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            self._tick = self.clock.monotonic()
            try:
                outcome = self.deliverer.step()
            except SpoolError as exc:
                log.error("spool_unavailable", error=str(exc))
                self._sleep(retry_delay(1))
                continue
            except Exception:  # the last net: a bug outside any one item must not end the daemon
                failures += 1
                log.exception("delivery_step_crashed", streak=failures)
                self._sleep(retry_delay(failures))
                continue
            failures = 0
            if outcome.wait == 0:
                continue
            self._sleep(IDLE_WAKE_SECONDS if outcome.wait is None else outcome.wait)

    def _sleep(self, seconds: float) -> None:
        # Through the clock, so a fake clock runs the loop in fake time; a new file or stop()
        # sets _wake and ends the wait early.
        self.clock.wait(min(seconds, IDLE_WAKE_SECONDS), self._wake)
        self._wake.clear()

    def _start_heartbeat(self) -> threading.Thread | None:
        """Under systemd's watchdog: ping while the loop keeps turning (a request may be long)."""
        every = self._watchdog_every
        if every is None:
            return None

        def beat() -> None:
            while not self.stopping.wait(every):
                if self.clock.monotonic() - self._tick < STALL_SECONDS:
                    self.notifier.watchdog()
                else:
                    log.error("loop_stalled", seconds=round(self.clock.monotonic() - self._tick))

        self.notifier.watchdog()
        thread = threading.Thread(target=beat, name="exportsync-heartbeat", daemon=True)
        thread.start()
        return thread
