"""One delivery step: pick what is due, build a batch, spend one request on it, record the outcome.

The step is synchronous and does at most one counted API request, so tests drive it call by call
with a fake clock and a scripted `Api`; the loop in `daemon.py` only waits between steps. Every
request is one `POST /batch`: small CSV files inline (gzip-compressed when that pays), session
objects, and presign asks for large files, whose bytes then go straight to S3 by presigned PUT
(in streamed parts above the multipart threshold); those PUTs do not count against the usage
plan. When a request goes is the pacing policy's decision (`pacing.py`).

The step composes the parts that do each job: `batcher` builds the batch, `sender` spends the
request and applies the error policy, `answers` applies each entry's answer (and the presigned
PUTs), and `outcomes` records what became of each item. Failures never block the queue: a file
that cannot be read or parsed fails alone, locally, without spending a request; a refused item
fails with the server's reason; transient errors (and entries the API answers `retry`) come back
later with capped, jittered exponential backoff.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from exportsync import sendnow
from exportsync.answers import Answers
from exportsync.backlog import Backlog
from exportsync.batcher import BatchBuilder
from exportsync.client import Api
from exportsync.clock import Clock
from exportsync.config import ApiConfig, WatchConfig
from exportsync.history import History, exports_today, read_history
from exportsync.logs import get_logger
from exportsync.metrics import Metrics
from exportsync.multipart import Uploads
from exportsync.outcomes import Outcomes
from exportsync.pacing import Pacing, Plan, plan
from exportsync.quota import QuotaLedger
from exportsync.sender import Sender
from exportsync.spool import Spool

__all__ = [
    "FULL_WAITS_FOR_INTAKE_SECONDS",
    "INTAKE_RECHECK_SECONDS",
    "LONGEST_DELAY",
    "Deliverer",
    "StepOutcome",
]

log = get_logger(__name__)

# Longer than any delay an item is given (backoff stops at 30 min): an attempt scheduled further
# ahead than this comes from before the wall clock was set back, and is due now.
LONGEST_DELAY = 3600.0
# A request that goes at once (a full one; any, with no daily limit) waits while the intake is
# still reading files in (a burst), so that building it (reading, hashing and compressing up to a
# thousand files) does not slow the burst's recording; at most this long, however busy the folder
# stays.
FULL_WAITS_FOR_INTAKE_SECONDS = 2.0
# How often it looks again meanwhile (the intake's commits wake the loop as well).
INTAKE_RECHECK_SECONDS = 0.1


@dataclass(frozen=True)
class StepOutcome:
    """What a step did, and how long the loop may sleep before the next one (None: until woken)."""

    requested: bool
    wait: float | None


class Deliverer:
    """The delivery step: when to send (pacing, quota, send-now) and the parts that do it.

    `watch` gives the folder and what becomes of a delivered file; `settings` (the `[api]`
    section) the batch limits and the default session user."""

    def __init__(
        self,
        *,
        spool: Spool,
        ledger: QuotaLedger,
        api: Api,
        clock: Clock,
        watch: WatchConfig,
        settings: ApiConfig,
        pacing: Pacing | None = None,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        intake_busy: Callable[[], bool] = lambda: False,
    ) -> None:
        self._spool = spool
        self._ledger = ledger
        self._clock = clock
        self._pacing = pacing or Pacing()
        self._intake_busy = intake_busy  # files seen in the folder and not yet in the spool
        # Since when a request that goes at once waits for the intake (monotonic), or None.
        self._full_waiting_since: float | None = None
        self._history: tuple[float, History] | None = None  # (period start, its past days)
        self._uploads = Uploads(spool=spool, api=api, root=watch.dir, clock=clock)
        outcomes = Outcomes(
            spool=spool, clock=clock, watch=watch, uploads=self._uploads, metrics=metrics
        )
        self._builder = BatchBuilder(
            spool=spool,
            clock=clock,
            watch=watch,
            settings=settings,
            uploads=self._uploads,
            outcomes=outcomes,
        )
        self._answers = Answers(
            spool=spool, api=api, clock=clock, watch=watch, uploads=self._uploads, outcomes=outcomes
        )
        self._sender = Sender(
            spool=spool,
            ledger=ledger,
            api=api,
            clock=clock,
            cap=self._builder.cap,
            answers=self._answers,
            outcomes=outcomes,
            rng=rng,
        )

    def backlog(self, now: float) -> Backlog:
        """What is due now, as the pacing policy sees it. While the intake still holds files it
        has seen but not yet spooled (settling, or being read), the folder is not quiet: they
        arrive now, so a backlog read in slowly is not sent in slices."""
        backlog = self._spool.backlog(
            now, inline_max_bytes=self._builder.inline_max, max_entries=self._builder.max_entries
        )
        if backlog.items and self._intake_busy():
            return replace(backlog, newest_at=now)
        return backlog

    def plan(self, now: float) -> Plan:
        view = self._ledger.view()
        backlog = self.backlog(now)
        history = self.history(view.period_start)
        # Today's exports matter only to a learned plan: no query for them otherwise.
        learns = view.limit is not None and backlog.items > 0 and bool(history.days)
        decision = plan(
            backlog,
            now,
            view,
            self._pacing,
            history,
            today=self.today(view.period_start) if learns else (),
        )
        # `exportsync send-now`: the one override of the pacing policy's hold.
        return sendnow.honour(self._spool, decision, backlog, now)

    def history(self, period_start: float) -> History:
        """The past days the pacing policy learns from, read once per quota period (past days
        do not change)."""
        if self._history is None or self._history[0] != period_start:
            days = read_history(
                self._spool, period_start=period_start, days=self._pacing.learn_days
            )
            self._history = (period_start, days)
        return self._history[1]

    def today(self, period_start: float) -> list[float]:
        """Today's exports so far, which the learned policy lines up with the past days'."""
        if self._pacing.learn_days <= 0:
            return []
        return exports_today(self._spool, period_start=period_start)

    def step(self) -> StepOutcome:
        """Do at most one counted request's worth of work."""
        now = self._clock.time()
        if self._still_waiting_for_intake():
            # Not planned again meanwhile: each plan reads the backlog, and the intake's commits
            # wake the loop a dozen times in a burst.
            return StepOutcome(False, INTAKE_RECHECK_SECONDS)
        self._release_stranded(now)
        self._spool.pull_back(now + LONGEST_DELAY, now=now)
        resumable = self._uploads.resumable(now)
        if resumable is not None:
            # Parts of an upload already asked for cost no request: finish them first.
            self._answers.continue_upload(resumable)
            return StepOutcome(False, 0.0)
        decision = self.plan(now)
        if decision.send_at is None:
            next_at = self._spool.next_due_at()
            return StepOutcome(False, None if next_at is None else max(0.0, next_at - now))
        wait = max(self._ledger.wait_time(), decision.wait(now) or 0.0)
        if wait > 0:
            return StepOutcome(False, wait)
        if self._waits_for_intake(decision):
            return StepOutcome(False, INTAKE_RECHECK_SECONDS)
        try:
            batch = self._builder.build(self._spool.due(now, limit=self._builder.max_entries))
            if batch.count == 0:
                # Nothing valid to send: record the local verdicts without spending a request.
                self._answers.apply_sessions(batch.session_parts, [])
        finally:
            self._spool.release_hold()  # the item last read and parsed is out of hand
        if batch.count == 0:
            # Everything looked at failed or changed locally; look again at once.
            return StepOutcome(False, 0.0)
        log.info("batch_planned", reason=decision.reason, entries=batch.count, bytes=batch.size)
        self._sender.send(batch)
        return StepOutcome(True, 0.0)

    def _waits_for_intake(self, decision: Plan) -> bool:
        """A request that goes at once, not held by the quiet window (a full one; any, with no
        daily limit), waits while the intake is reading a burst in, at most
        `FULL_WAITS_FOR_INTAKE_SECONDS` per busy spell (a folder that stays busy longer gets
        its requests at the plan's pace after that): it carries as many files or more, and
        spends no more requests, for a wait far shorter than its delivery. Timed on the
        monotonic clock: a wall clock set back must not stretch it."""
        if decision.reason not in ("full", "now") or not self._intake_busy():
            self._full_waiting_since = None
            return False
        now = self._clock.monotonic()
        if self._full_waiting_since is None:
            self._full_waiting_since = now
        return now - self._full_waiting_since < FULL_WAITS_FOR_INTAKE_SECONDS

    def _still_waiting_for_intake(self) -> bool:
        since = self._full_waiting_since
        return (
            since is not None
            and self._clock.monotonic() - since < FULL_WAITS_FOR_INTAKE_SECONDS
            and self._intake_busy()
        )

    def _release_stranded(self, now: float) -> None:
        """Items a step left in `sending` go back to pending, due now.

        A step is synchronous: when one begins no request is out, so an item still `sending`
        is one whose answer (or failure) could not be recorded, as when the state disk filled
        while the request was out. The spool error ended that step; the loop tries again until
        the spool can be written, and then they are sent again (the server answers `duplicate`
        for what it had stored). Until then this write fails too and nothing new is sent.
        """
        released = self._spool.recover(now)
        if released:
            log.warning("sending_released", items=released, reason="outcome not recorded")
