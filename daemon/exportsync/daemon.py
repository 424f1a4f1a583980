"""The daemon: wires watcher, intake, spool, quota ledger and delivery, then loops.

`Daemon.run()` is the loop: recover, watch, scan, say READY, then step and wait until stopped. The
loop itself decides nothing; `Deliverer.step()` does one request's worth of work and says how long
nothing will be due, and the loop sleeps exactly that long (or until the daily prune) unless woken:
by a new file, by `stop()`, or by `wake()` (`exportsync enqueue`/`retry` in another process send
the daemon SIGUSR1). An idle daemon does not wake at all; going idle after work, it first hands
back the spool's page cache and the C heap's free pages (`memory`). `request_reload()` (SIGHUP) has
the loop read the config again between two steps (`reload`). A pruning pass (`pruning`) goes one
bounded chunk per turn, a delivery step between two chunks.
"""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from pathlib import Path

from exportsync.client import Api
from exportsync.clock import Clock, SystemClock, iso_utc
from exportsync.config import Config
from exportsync.delivery import Deliverer
from exportsync.errors import ExportsyncError, SpoolCorrupt, SpoolError, SpoolFull
from exportsync.fs.dirfd import pin, real_path
from exportsync.logs import get_logger
from exportsync.memory import trim_heap
from exportsync.metrics import Metrics
from exportsync.notify import Notifier, watchdog_interval
from exportsync.outcomes import retry_delay
from exportsync.pruning import PRUNE_EVERY_SECONDS, Pruner
from exportsync.reload import Reloader, compare, merged
from exportsync.spool import Spool
from exportsync.watcher import RESCAN_SECONDS, StatKey, Watcher, has_close_events, lstat_key
from exportsync.wiring import build_intake, build_ledger, build_matcher

__all__ = ["PRUNE_EVERY_SECONDS", "Daemon"]

log = get_logger(__name__)

# The loop counts as healthy while it turned within this long; a request or presigned PUT that
# hangs past it lets systemd's watchdog restart the daemon (the spool makes that safe).
STALL_SECONDS = 900.0
# Without a daily limit a file goes the moment its writer closes it, after this short pause (a
# writer that reopens to append within it is still caught). A version sent too early costs only
# one more cheap request for the next one; with a daily limit the watcher's CLOSE_QUIET_SECONDS and
# the pacing quiet window hold instead.
UNLIMITED_CLOSE_QUIET_SECONDS = 0.02
# While the state dir's disk is full at start, the spool is tried again at most this seldom.
SPOOL_FULL_MAX_WAIT = 30.0
# Files the start-up scan records per transaction.
SCAN_BATCH = 1000
# A sleep at least this long after work (or one until woken) is idle: the spool's page cache and
# the C heap's free pages go back to the system first (`memory`). The 1 request/s spacing of a
# delivery run stays below it.
IDLE_RELEASE_SECONDS = 10.0


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
        reloader: Reloader | None = None,
    ) -> None:
        self.config = config
        self.api = api
        self._metrics = metrics
        self._reloader = reloader
        self._reload = threading.Event()
        self.clock: Clock = clock or SystemClock()
        self.notifier = notifier or Notifier()
        self.root = Path(os.path.abspath(config.watch.dir))
        self.spool, corrupt = self._open_spool()
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
        self.intake = build_intake(
            config,
            self.spool,
            self.clock,
            matcher=self.matcher,
            on_spooled=self._wake.set,
            on_detected=metrics.file_detected if metrics is not None else lambda: None,
        )
        self.deliverer = self._build_deliverer(config, api)
        self.watcher = Watcher(
            config.watch,
            self.matcher,
            self._offer,
            # With inotify an overflow or a lost folder is an event; a timed rescan only without.
            rescan_seconds=None if has_close_events(config.watch.use_polling) else RESCAN_SECONDS,
            changed=self._changed,
            on_removed=self._file_removed,
            close_quiet_seconds=(
                UNLIMITED_CLOSE_QUIET_SECONDS if config.quota.daily_requests == 0 else None
            ),
        )
        self._watchdog_every = watchdog_interval()
        self._tick = self.clock.monotonic()
        self.pruner = Pruner(
            lambda: self.spool,
            self.clock,
            keep_days=lambda: self.config.state.keep_delivered_days,
            current=lstat_key,
        )
        # Look whether failed items' files are gone: at start, and when the watcher sees a file
        # deleted or moved away (no timer: an idle daemon does not wake).
        self._sweep_due = threading.Event()
        self._sweep_due.set()
        self._damaged = False  # a query found the spool damaged: rebuild it before the next step
        self._released_at = -1  # the spool's commit count when memory was last released

    def _build_deliverer(self, config: Config, api: Api) -> Deliverer:
        return Deliverer(
            spool=self.spool,
            ledger=self.ledger,
            api=api,
            clock=self.clock,
            # The folder as the daemon pinned it at start (a reload does not move it).
            watch=replace(config.watch, dir=self.root),
            settings=config.api,
            pacing=config.quota.pacing,
            metrics=self._metrics,
            intake_busy=self._intake_busy,
        )

    def _open_spool(self) -> tuple[Spool, Path | None]:
        """Open the spool; while its disk is full, wait for room (a growing pause, at most
        `SPOOL_FULL_MAX_WAIT`) instead of exiting: a restart loop would change nothing, and
        under systemd it would end in the unit's start limit."""
        delay = 1.0
        while True:
            try:
                return Spool.open_or_replace(self.config.state.dir, now=self.clock.time())
            except SpoolFull as exc:
                log.error("spool_full_at_start", error=str(exc), retry_in_seconds=delay)
                self.clock.wait(delay, threading.Event())
                delay = min(SPOOL_FULL_MAX_WAIT, delay * 2)

    def stop(self) -> None:
        """Ask the loop to finish: the request in flight completes, nothing new starts."""
        self.stopping.set()
        self._wake.set()

    def request_reload(self) -> None:
        """Read the config and key file again before the next step; any thread, or a signal
        handler (SIGHUP)."""
        self._reload.set()
        self._wake.set()

    def wake(self) -> None:
        """Look at the spool now (another process added or retried items); any thread, or a
        signal handler."""
        self._wake.set()

    def _intake_busy(self) -> bool:
        return self.watcher.busy()

    def _offer(self, paths: list[Path]) -> None:
        """The watcher's on_ready: record a batch; a failure is raised so the watcher offers the
        batch again at its next rescan."""
        try:
            self.intake.offer_many(paths)
        except SpoolError as exc:
            log.error("spool_write_failed", paths=len(paths), error=str(exc))
            raise

    def _offer_scanned(self, paths: list[Path]) -> None:
        try:
            self.intake.offer_many(paths)
        except SpoolError as exc:
            # Disk full or I/O error: the watcher's next rescan offers these files again.
            log.error("spool_write_failed", paths=len(paths), error=str(exc))
            for path in paths:
                self.watcher.reconsider(path)

    def _changed(self, found: list[tuple[str, StatKey]]) -> list[tuple[str, StatKey]]:
        """The entries the spool does not know in this version, from one query: the start-up
        scan's comparison, and the watcher's after an overflow or a re-armed watch."""
        known = self.spool.versions()
        changed: list[tuple[str, StatKey]] = []
        for found_path, key in found:
            raw = os.fsencode(found_path)  # the spool keeps paths as the kernel's bytes
            if (raw, *key) not in known and (raw, key[0], key[1], 0) not in known:
                changed.append((found_path, key))
        return changed

    def _startup_scan(self) -> None:
        """Compare the folder with the spool in one query; hash only what is new or changed."""
        found = self.watcher.scan_entries()
        changed = self._changed(found)
        del found
        log.info("startup_scan", changed=len(changed))
        settle_ns = int(self.config.watch.settle_seconds * 1e9)
        now_ns = int(self.clock.time() * 1e9)
        batch: list[Path] = []
        for name, (_, mtime_ns, _) in sorted(changed):
            if self.stopping.is_set():
                return
            path = Path(name)  # a Path only for the few that changed
            if now_ns - mtime_ns < settle_ns:
                self.watcher.settle(path)  # may still be being written: wait for it
                continue
            batch.append(path)
            if len(batch) >= SCAN_BATCH:
                self._offer_scanned(batch)
                batch = []
        if batch:
            self._offer_scanned(batch)

    def run(self) -> None:
        """Run until `stop()`; always leaves the spool consistent."""
        recovered = self.spool.recover(self.clock.time())
        self._count_crashes()
        self._note_api_url()
        log.info(
            "daemon_started",
            root=str(self.root),
            state_dir=str(self.config.state.dir),
            recovered=recovered,
        )
        self.watcher.start()
        heartbeat: threading.Thread | None = None
        try:
            self._startup_scan()
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

    def prune(self) -> int:
        """A whole pruning pass now: delivered items older than `state.keep_delivered_days`
        dropped; the number dropped. (The loop spreads its passes out, `Pruner.step`.)"""
        return self.pruner.run_pass()

    def sweep_failed(self) -> int:
        """Failed items whose file is gone, or whose path a newer version was since delivered
        to, leave the failed list; how many did. While the folder itself is missing nothing
        counts as gone (an unmounted share is not a deleted file)."""
        real = pin(self.root)
        # The pinned folder itself (never through a symlink that replaced it since).
        root_there = not self.watcher.missing and real.is_dir() and not real.is_symlink()
        superseded = self.spool.dismiss_superseded(
            now=self.clock.time(),
            gone=lambda path: root_there and not os.path.lexists(real_path(self.root, path)),
        )
        for item in superseded:
            log.info("failed_superseded", item_id=item.id, path=str(item.path))
        return len(superseded)

    def _file_removed(self) -> None:
        """The watcher's thread: a file left the folder; a failed item's may be among them."""
        self._sweep_due.set()
        self._wake.set()

    def _maybe_sweep(self) -> None:
        if self._sweep_due.is_set():
            self._sweep_due.clear()
            if self.spool.counts()["failed"]:
                self.sweep_failed()

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
            if self._reload.is_set():
                self._reload.clear()
                self.reload()
            try:
                self._check_spool()
                if self.pruner.due(self._tick):
                    self.pruner.step()  # one chunk; the delivery step below runs before the next
                self._maybe_sweep()
                outcome = self.deliverer.step()
            except SpoolCorrupt as exc:
                log.error("spool_unavailable", error=str(exc))
                self._damaged = True  # rebuilt at the top of the next turn
                continue
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
            if outcome.wait == 0 or self.pruner.busy:
                continue
            # Until the next thing due (a retry, the pacing plan's next send) or the daily prune;
            # nothing polls: new work sets _wake.
            until_prune = max(0.0, self.pruner.next_at - self.clock.monotonic())
            seconds = until_prune if outcome.wait is None else min(outcome.wait, until_prune)
            if seconds >= IDLE_RELEASE_SECONDS:
                self._release_memory()
            self._sleep(seconds)

    def _release_memory(self) -> None:
        """Going idle: after a burst, the spool's page cache and the C heap's free pages are
        resident and unused (`memory`). Once per idle spell: only when the spool committed
        since the last release, and not while the intake still holds files it saw."""
        commits = self.spool.commits
        if commits == self._released_at or self.watcher.busy():
            return
        self._released_at = commits
        self.spool.release_memory()
        trimmed = trim_heap()
        log.debug("memory_released", heap_trimmed=trimmed)

    def _check_spool(self) -> None:
        """Before each step: is the spool file still the database the daemon works on?"""
        reason = "damaged" if self._damaged else self.spool.lost()
        if reason is not None:
            self._rebuild_spool(reason)
            self._damaged = False

    def _rebuild_spool(self, reason: str) -> None:
        """The spool's files were deleted, replaced or damaged while running: put it right
        without a restart. The database still open is copied back, so nothing is lost
        (`spool_restored`); when that copy is damaged too, the file is set aside and a fresh
        spool starts, as at start (`spool_corrupt`): the day's request count is carried over
        when it can still be read, and the folder is spooled afresh (the server answers
        `duplicate`)."""
        now = self.clock.time()
        try:
            used: int | None = self.ledger.snapshot().used
        except SpoolError:
            used = None
        restored, aside = self.spool.rebuild(now=now)
        moved_to = None if aside is None else str(aside)
        if restored:
            log.warning("spool_restored", reason=reason, moved_to=moved_to)
            return
        if used is None:
            self.ledger.assume_spent()
        else:
            self.spool.quota_raise_to(self.ledger.period_start(now), used)
        log.error(
            "spool_corrupt",
            reason=reason,
            moved_to=moved_to,
            while_running=True,
            quota_used=self.ledger.snapshot().used,
            resets_at=iso_utc(self.ledger.resets_at(now)),
        )
        self._startup_scan()

    def reload(self) -> bool:
        """Apply the config file and key file as they are now (`reload`); on any error keep the
        running config. Never raises: a bad edit must not end the daemon."""
        if self._reloader is None:
            log.error("config_reload_failed", error="no config file to read again", kept="running")
            return False
        try:
            new = self._reloader.load()
        except ExportsyncError as exc:
            log.error("config_reload_failed", error=str(exc), kept="running")
            return False
        except Exception as exc:  # an unexpected fault reading it: the running config stays
            log.exception("config_reload_failed", error=repr(exc), kept="running")
            return False
        change = compare(self.config, new)
        config = merged(self.config, new)
        for warning in new.warnings:
            log.warning("config_warning", message=warning)
        if change.touches("api") or change.touches("quota"):
            api = self._reloader.api_for(config)
            if change.touches("quota"):
                self.ledger = build_ledger(config, self.spool, self.clock)
            old, self.api = self.api, api
            self.deliverer = self._build_deliverer(config, api)
            _close(old)
        if change.touches("log"):
            self._reloader.relog(config)
        self.config = config
        released = key_released = 0
        try:  # a failure here only leaves the holds to end by themselves, in at most 300 s
            if change.touches("api.url"):
                released = self._note_api_url()
            if change.touches("api.api_key"):
                key_released = self.spool.release_key_refused(now=self.clock.time())
        except SpoolError as exc:
            log.error("spool_unavailable", error=str(exc))
        log.info(
            "config_reloaded",
            path=str(config.path),
            changed=list(change.live),
            restart_needed=list(change.restart_needed),
            redirect_holds_released=released,
            key_holds_released=key_released,
        )
        return True

    def _note_api_url(self) -> int:
        """Items held after a redirect go at the next send once `api.url` changed (at a reload
        or since the last run)."""
        released = self.spool.note_api_url(self.config.api.url, now=self.clock.time())
        if released:
            log.info("redirect_holds_released", items=released, api_url=self.config.api.url)
        return released

    def _sleep(self, seconds: float) -> None:
        # Through the clock, so a fake clock runs the loop in fake time; a new file, wake() or
        # stop() sets _wake and ends the wait early.
        self.clock.wait(seconds, self._wake)
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


def _close(api: Api) -> None:
    close = getattr(api, "close", None)
    if callable(close):
        close()
