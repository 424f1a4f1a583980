"""Spending one request on a batch, and the error policy for a request that failed.

The request is counted before it goes (the quota ledger), its items are `sending` while it is out,
and a failure never blocks the queue: a permanent refusal fails the items, a transient one brings
them back together after one backoff, a 413 halves the next batch, a 403 or a redirect holds them
for minutes, and a refused connection is refunded and retried after a growing pause.
"""

from __future__ import annotations

import random
from typing import assert_never

from exportsync.answers import Answers
from exportsync.batcher import BatchCap
from exportsync.batches import Batch
from exportsync.client import Api
from exportsync.clock import Clock, iso_utc
from exportsync.errors import (
    DELIVERY_FAILURES,
    KEY_REFUSED_MARK,
    DeliveryFailure,
    Forbidden,
    PermanentError,
    ProtocolError,
    QuotaExhausted,
    Redirected,
    RequestTooLarge,
    SpoolError,
    Throttled,
    TransientError,
    Unreachable,
)
from exportsync.logs import get_logger
from exportsync.outcomes import Outcomes, retry_delay
from exportsync.quota import QuotaLedger
from exportsync.replies import by_kind
from exportsync.spool import API_KEY_REFUSED, API_STATE_KEY, API_UNREACHABLE, Item, Spool

__all__ = ["FORBIDDEN_DELAY", "INTERNAL_ERROR_ATTEMPTS", "UNREACHABLE_MAX_DELAY", "Sender"]

log = get_logger(__name__)

FORBIDDEN_DELAY = 300.0
# A lone item whose request keeps raising something unexpected fails after this many tries.
INTERNAL_ERROR_ATTEMPTS = 3
# While the API cannot even be connected to, retries cost no quota: keep trying at least this often.
UNREACHABLE_MAX_DELAY = 60.0


class Sender:
    """One `POST /batch` and what follows its failure; the answers go to `Answers`."""

    def __init__(
        self,
        *,
        spool: Spool,
        ledger: QuotaLedger,
        api: Api,
        clock: Clock,
        cap: BatchCap,
        answers: Answers,
        outcomes: Outcomes,
        rng: random.Random | None = None,
    ) -> None:
        self._spool = spool
        self._ledger = ledger
        self._api = api
        self._clock = clock
        self._cap = cap
        self._answers = answers
        self._outcomes = outcomes
        self._rng = rng or random.Random()  # noqa: S311 -- jitter, not cryptography
        self._unreachable = 0  # consecutive requests that found no connection
        self._api_state = spool.meta_get(API_STATE_KEY)

    def send(self, batch: Batch) -> None:
        now = self._clock.time()
        ids = [i.id for i in batch.items]
        self._spool.mark_sending(ids, now=now)
        used = self._ledger.spend()
        shape = {
            "route": "batch",
            "items": len(ids),
            "entries": batch.count,
            "files": len(batch.files),
            "sessions": len(batch.bodies),
            "presign": len(batch.presigns),
            "item_ids": ids,
            "quota_used": used,
            "quota_limit": self._ledger.limit,
        }
        # Counted before it goes; `request_sent` follows only once the gateway saw it (an
        # answer, or a failure after the connection was made): a refused connection is
        # refunded and logged as api_unreachable instead.
        log.info("request_sending", **shape)
        try:
            try:
                results = self._api.batch(batch.request())
            finally:
                self._ledger.answered()
            # A count that does not match, or a status the contract does not name, is retried
            # like a 5xx before any answer is applied.
            answers = by_kind(
                results,
                files=len(batch.files),
                sessions=len(batch.bodies),
                presign=len(batch.presigns),
            )
        except DELIVERY_FAILURES as exc:
            if not isinstance(exc, Unreachable):
                self._unreachable = 0
                log.info("request_sent", **shape, outcome=type(exc).__name__)
            self._on_error(batch, exc)
            self._note_api_state(exc)
            return
        except SpoolError:
            raise
        except Exception as exc:  # the batch must never be stranded in `sending`
            log.exception("delivery_step_crashed", route="batch", item_ids=ids)
            if len(batch.items) == 1:
                self._internal_error(batch.items[0], exc)
            else:
                # One of them may be the cause: the next batch carries half, down to one item.
                self._cap.halve_items(batch)
                now = self._clock.time()
                self._spool.release_sending(
                    ids, at=now + retry_delay(1), error=f"internal error: {exc!r}", now=now
                )
            return
        log.info("request_sent", **shape, outcome="answered")
        self._cap.lift()
        self._unreachable = 0
        self._note_api_state(None)
        # Each item's answer is applied behind the per-item firewall (`Outcomes.guarded`).
        self._answers.apply_files(batch.files, answers.files)
        self._answers.apply_sessions(batch.session_parts, answers.sessions)
        self._answers.apply_presign(batch.presigns, answers.presign)

    def _on_error(self, batch: Batch, exc: DeliveryFailure) -> None:
        """What follows a failed request. Only transient errors count against the items."""
        reason = str(exc)
        outcomes = self._outcomes
        match exc:
            case PermanentError():
                self._fail_all(batch, reason)
            case RequestTooLarge() if batch.count <= 1:
                self._fail_all(batch, reason)  # one item alone is too large: it never fits
            case RequestTooLarge():
                outcomes.hold(batch.items, self._shrink_next(batch), reason)
            case ProtocolError():  # before TransientError, which it is a kind of
                log.error("api_protocol_error", error=reason, items=len(batch.items))
                outcomes.retry_items(batch.items, reason)
            case Unreachable():  # before TransientError, which it is a kind of
                outcomes.hold(batch.items, self._unreachable_delay(exc), reason)
            case TransientError():
                outcomes.retry_items(batch.items, reason)
            case Throttled():
                pause = 1.0 + self._rng.uniform(0.0, 4.0)
                self._ledger.pause(pause)
                log.warning("quota_throttled", status=exc.status, pause_seconds=round(pause, 2))
                outcomes.hold(batch.items, 0.0, reason)  # the ledger holds the next request back
            case QuotaExhausted():
                self._ledger.mark_exhausted()
                resets_at = self._ledger.resets_at(self._clock.time())
                log.warning("quota_exhausted", resets_at=iso_utc(resets_at), items=len(batch.items))
                outcomes.hold(batch.items, 0.0, reason)  # the ledger parks everything until reset
            case Forbidden():
                log.error("api_forbidden", message=reason, retry_in_seconds=FORBIDDEN_DELAY)
                outcomes.hold(batch.items, FORBIDDEN_DELAY, f"{KEY_REFUSED_MARK} ({reason})")
            case Redirected():
                log.error("api_redirected", message=reason, retry_in_seconds=FORBIDDEN_DELAY)
                outcomes.hold(batch.items, FORBIDDEN_DELAY, reason)
            case _:
                assert_never(exc)

    def _note_api_state(self, exc: DeliveryFailure | None) -> None:
        """What the API's last answer says about the key and the network, for `status`'s
        headline (another process): written only when it changes."""
        state = (
            API_KEY_REFUSED
            if isinstance(exc, Forbidden)
            else API_UNREACHABLE
            if isinstance(exc, Unreachable)
            else None
        )
        if state is None and exc is not None:
            return  # a throttle or a 5xx says nothing new about the key or the network
        if state != self._api_state:
            self._spool.meta_set(API_STATE_KEY, state)
            self._api_state = state

    def _fail_all(self, batch: Batch, reason: str) -> None:
        for item in batch.items:
            self._outcomes.fail(item, f"refused by the API: {reason}")

    def _unreachable_delay(self, exc: Unreachable) -> float:
        """The request never reached the gateway: refunded, and retried after a growing pause."""
        self._ledger.refund()
        self._unreachable += 1
        delay = min(UNREACHABLE_MAX_DELAY, retry_delay(self._unreachable))
        log.warning(
            "api_unreachable",
            error=str(exc),
            streak=self._unreachable,
            retry_in_seconds=round(delay, 2),
        )
        return delay

    def _shrink_next(self, batch: Batch) -> float:
        """After a 413 the next batch carries at most half of this one; it may go at once."""
        self._cap.halve(batch)
        log.warning(
            "batch_too_large",
            items=len(batch.items),
            next_max_items=self._cap.items,
            next_max_bytes=self._cap.bytes,
        )
        return 0.0

    def _internal_error(self, item: Item, exc: Exception) -> None:
        """A request of `item` alone raised something unexpected: retried with backoff a few
        times, then failed with the exception as its reason."""
        current = self._spool.get(item.id) or item
        if current.state not in ("sending", "pending"):
            return
        if current.attempts + 1 >= INTERNAL_ERROR_ATTEMPTS:
            self._outcomes.fail(current, f"{type(exc).__name__}: {exc}")
        else:
            self._outcomes.retry_later(current, f"internal error: {type(exc).__name__}: {exc}")
