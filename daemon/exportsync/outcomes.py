"""What becomes of an item: delivered, failed, retried later, or requeued because its file changed.

Every path of the delivery step ends here, so an item's state in the spool, the log line that says
so and the aftercare of a delivered file (`watch.after_upload`) are written in one place. Retries
wait with capped, jittered exponential backoff (tenacity's wait strategies, persisted per item).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar, assert_never

from exportsync.clock import Clock
from exportsync.config import WatchConfig
from exportsync.errors import FileRejected, SpoolError
from exportsync.fs import files
from exportsync.fs.aftercare import finish_file
from exportsync.logs import get_logger
from exportsync.metrics import Metrics
from exportsync.multipart import Uploads
from exportsync.spool import Item, Spool

__all__ = ["CHANGED_FILE_DELAY", "Outcomes", "retry_delay"]

log = get_logger(__name__)

_T = TypeVar("_T")

# How long a file that changed under us gets to settle before it is read again.
CHANGED_FILE_DELAY = 2.0


def retry_delay(attempt: int) -> float:
    """Seconds before retry `attempt`: 2, 4, 8 ... capped at 30 min, plus up to 2 s of jitter."""
    # tenacity at the first retry, not at start: a daemon that never retries never loads it.
    import tenacity  # noqa: PLC0415

    backoff = tenacity.wait_exponential(multiplier=2, max=1800) + tenacity.wait_random(0, 2)
    state = tenacity.RetryCallState(tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = max(1, attempt)
    return float(backoff(state))


class Outcomes:
    """Records each item's outcome in the spool and says it in the log."""

    def __init__(
        self,
        *,
        spool: Spool,
        clock: Clock,
        watch: WatchConfig,
        uploads: Uploads,
        metrics: Metrics | None = None,
    ) -> None:
        self._spool = spool
        self._clock = clock
        self._root = watch.dir
        self._after_upload = watch.after_upload
        self._uploads = uploads
        self._metrics = metrics

    def delivered(self, item: Item, key: str | None) -> None:
        self.delivered_many([(item, key)])

    def delivered_many(self, delivered: Sequence[tuple[Item, str | None]]) -> None:
        """Items of one answer delivered (with their object keys): recorded in one transaction
        (their multipart progress dropped in it), then each one logged, counted and given its
        aftercare, which only ever follows the commit (a file is moved or deleted only once its
        delivery is on disk). Should recording them together raise (a bug, not the spool), each
        is recorded alone behind the per-item firewall, so one item's fault stays its own."""
        if not delivered:
            return
        now = self._clock.time()
        try:
            superseded = self._spool.mark_delivered_many(
                [(item.id, key) for item, key in delivered], now=now
            )
        except SpoolError:
            raise
        except Exception:  # rolled back: nothing was recorded; one at a time finds the culprit
            if len(delivered) == 1:
                raise
            for item, key in delivered:
                self.guarded(item, self.delivered, item, key)
            return
        for (item, key), dismissed in zip(delivered, superseded, strict=True):
            self.guarded(item, self._after_delivered, item, key, dismissed, now)

    def _after_delivered(self, item: Item, key: str | None, dismissed: int, now: float) -> None:
        if dismissed:
            log.info("failed_superseded", path=str(item.path), by_item_id=item.id, items=dismissed)
        if self._metrics is not None:
            self._metrics.delivered(item, now)
        log.info("item_delivered", item_id=item.id, path=str(item.path), kind=item.kind, key=key)
        self._finish_file(item)

    def _finish_file(self, item: Item) -> None:
        if self._after_upload == "keep":
            return
        try:
            finish_file(self._root, item, self._after_upload)
        except Exception as exc:  # the item is delivered whatever happens here
            log.warning(
                "after_upload_failed", item_id=item.id, error=f"{type(exc).__name__}: {exc}"
            )

    def fail(self, item: Item, reason: str, *, vanished: bool = False) -> None:
        self._uploads.drop(item.id)
        self._spool.mark_failed(item.id, reason, now=self._clock.time(), vanished=vanished)
        log.warning("item_failed", item_id=item.id, path=str(item.path), reason=reason)

    def vanished(self, item: Item) -> None:
        # Should the file come back (even renamed back with its old mtime), it is spooled again.
        self.fail(item, "file was deleted before it could be delivered", vanished=True)

    def retry_later(self, item: Item, reason: str) -> None:
        self.retry_items([item], reason)

    def retry_items(self, items: Sequence[Item], reason: str) -> None:
        """Back to pending after one backoff (for the most-tried of `items`): the items of a
        failed request come back together, as a jitter of their own would scatter them over
        seconds and a daily plan would pay a request for each straggler."""
        now = self._clock.time()
        delay = retry_delay(max(item.attempts for item in items) + 1)
        self._spool.reschedule_many(
            [item.id for item in items], at=now + delay, error=reason, now=now
        )
        for item in items:
            log.info(
                "item_retry_scheduled",
                item_id=item.id,
                attempt=item.attempts + 1,
                delay_seconds=round(delay, 2),
                error=reason,
            )

    def hold(self, items: Sequence[Item], delay: float, reason: str) -> None:
        """Back to pending in `delay` seconds, the attempt not counted against them."""
        now = self._clock.time()
        ids = [item.id for item in items]
        self._spool.reschedule_many(ids, at=now + delay, error=reason, now=now, count_attempt=False)

    def unreadable(self, item: Item, exc: files.FileChanged | FileRejected | OSError) -> None:
        """Settle an item whose file could not be read as spooled."""
        match exc:
            case files.FileChanged():
                if exc.snapshot is None:  # still being written: look again once it settles
                    self.retry_later(item, "file is changing; will read it again")
                else:
                    self.requeue_changed(item, exc.snapshot)
            case FileNotFoundError():
                self.vanished(item)
            case FileRejected():
                self.fail(item, str(exc))
            case OSError():
                self.retry_later(item, f"cannot read the file: {exc.strerror or exc}")
            case _:
                assert_never(exc)

    def requeue_changed(self, item: Item, snap: files.FileSnapshot) -> None:
        now = self._clock.time()
        kept = self._spool.replace_version(
            item.id,
            size=snap.size,
            mtime_ns=snap.mtime_ns,
            sha256=snap.sha256,
            at=now + CHANGED_FILE_DELAY,
            now=now,
        )
        log.info(
            "item_requeued",
            item_id=item.id,
            path=str(item.path),
            reason="file changed",
            merged=not kept,
        )

    def recheck_changed(self, item: Item) -> bool:
        """After a size or checksum mismatch: requeue new content; False if it is unchanged."""
        try:
            snap = files.snapshot(self._root, item.path)
        except FileNotFoundError:
            self.vanished(item)
            return True
        except FileRejected as exc:
            self.fail(item, str(exc))
            return True
        if snap.sha256 == item.content_sha256:
            return False
        self.requeue_changed(item, snap)
        return True

    def guarded(
        self, item: Item, work: Callable[..., _T | None], *args: Any, **kwargs: Any
    ) -> _T | None:
        """`work(*args)` for one item; an exception of its own settles that item alone."""
        try:
            return work(*args, **kwargs)
        except SpoolError:
            raise  # the spool itself (disk full): nothing can be recorded, the loop waits
        except Exception as exc:  # the per-item firewall: one file, not the loop
            self._firewall(item, exc)
        return None

    def _firewall(self, item: Item, exc: Exception) -> None:
        """An unexpected exception while handling `item`: fail it with the exception's class
        and message, or retry it later when it looks transient (an OS error)."""
        reason = f"{type(exc).__name__}: {exc}"
        log.error("item_firewalled", item_id=item.id, path=str(item.path), error=reason)
        current = self._spool.get(item.id)
        if current is None or current.state == "delivered":
            return  # settled before the exception: keep what was recorded
        if isinstance(exc, OSError):
            self.retry_later(current, reason)
        else:
            self.fail(current, reason)
