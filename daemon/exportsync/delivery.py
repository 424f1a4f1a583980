"""One delivery step: pick what is due, build a batch, spend one request on it, record the outcome.

The step is synchronous and does at most one counted API request, so tests drive it call by call
with a fake clock and a scripted `Api`; the loop in `daemon.py` only waits between steps. Every
request is one `POST /batch`: small CSV files inline (gzip-compressed when that pays), session
objects, and presign asks for large files, whose bytes then go straight to S3 by presigned PUT
(in streamed parts above the multipart threshold); those PUTs do not count against the usage
plan. When a request goes is the pacing policy's decision (`pacing.py`).

Failures never block the queue: a file that cannot be read or parsed fails alone, locally, without
spending a request; a refused item fails with the server's reason; transient errors (and entries
the API answers `retry`) come back later with capped, jittered exponential backoff (tenacity's
wait strategies, persisted per item).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar, assert_never

import tenacity

from exportsync import sendnow
from exportsync.backlog import Backlog
from exportsync.batches import (
    ENTRY_OVERHEAD_BYTES,
    Batch,
    FileEntry,
    PresignEntry,
    SessionPart,
    encode_file,
    parts_for,
    slice_sessions,
    urls_for,
)
from exportsync.client import Api, BatchFile, results_of_kind
from exportsync.clock import Clock, iso_utc
from exportsync.config import AfterUpload, ApiConfig, WatchConfig
from exportsync.errors import (
    DELIVERY_FAILURES,
    KEY_REFUSED_MARK,
    DeliveryFailure,
    FileRejected,
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
from exportsync.fs import files
from exportsync.fs.aftercare import finish_file
from exportsync.fs.names import wire_name
from exportsync.history import History, read_history
from exportsync.logs import get_logger
from exportsync.metrics import Metrics
from exportsync.multipart import MultipartUpload, Uploads, parse_multipart, part_digests
from exportsync.pacing import Pacing, Plan, plan
from exportsync.quota import QuotaLedger
from exportsync.sessions import ParsedSession, parse_session_file
from exportsync.spool import API_KEY_REFUSED, API_STATE_KEY, API_UNREACHABLE, Item, Spool
from exportsync_wire import DELIVERED, Kind, PresignFile, Status
from exportsync_wire.limits import INFLATED_BYTES as MAX_INFLATED_BYTES
from exportsync_wire.limits import MAX_BATCH_ENTRIES as MAX_ENTRIES_PER_REQUEST
from exportsync_wire.limits import OBJECT_BYTES as MAX_FILE_BYTES
from exportsync_wire.limits import PRESIGNED_URLS as MAX_PRESIGNED_URLS

__all__ = [
    "Deliverer",
    "StepOutcome",
    "retry_delay",
]

log = get_logger(__name__)

_T = TypeVar("_T")


# S3's answer to a completion whose If-None-Match: * finds an object at the key.
_PRECONDITION_FAILED = 412
# How long a file that changed under us gets to settle before it is read again.
CHANGED_FILE_DELAY = 2.0
FORBIDDEN_DELAY = 300.0
# Longer than any delay an item is given (backoff stops at 30 min): an attempt scheduled further
# ahead than this comes from before the wall clock was set back, and is due now.
LONGEST_DELAY = 3600.0
# A lone item whose request keeps raising something unexpected fails after this many tries.
INTERNAL_ERROR_ATTEMPTS = 3
# While the API cannot even be connected to, retries cost no quota: keep trying at least this often.
UNREACHABLE_MAX_DELAY = 60.0

_BACKOFF = tenacity.wait_exponential(multiplier=2, max=1800) + tenacity.wait_random(0, 2)


def retry_delay(attempt: int) -> float:
    """Seconds before retry `attempt`: 2, 4, 8 ... capped at 30 min, plus up to 2 s of jitter."""
    state = tenacity.RetryCallState(tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = max(1, attempt)
    return float(_BACKOFF(state))


@dataclass(frozen=True)
class StepOutcome:
    """What a step did, and how long the loop may sleep before the next one (None: until woken)."""

    requested: bool
    wait: float | None


class Deliverer:
    """The delivery step and the rules for what follows each answer."""

    def __init__(
        self,
        *,
        spool: Spool,
        ledger: QuotaLedger,
        api: Api,
        clock: Clock,
        root: Path,
        default_user_id: str | None,
        after_upload: AfterUpload = WatchConfig.after_upload,
        inline_max_bytes: int = ApiConfig.inline_max_bytes,
        batch_max_files: int = ApiConfig.batch_max_files,
        multipart_threshold_bytes: int = ApiConfig.multipart_threshold_bytes,
        pacing: Pacing | None = None,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        intake_busy: Callable[[], bool] = lambda: False,
    ) -> None:
        self._spool = spool
        self._ledger = ledger
        self._api = api
        self._clock = clock
        self._root = root
        self._user_id = default_user_id
        self._after_upload = after_upload
        self._inline_max = inline_max_bytes
        self._max_entries = max(1, min(batch_max_files, MAX_ENTRIES_PER_REQUEST))
        self._multipart_threshold = multipart_threshold_bytes
        self._pacing = pacing or Pacing()
        self._rng = rng or random.Random()  # noqa: S311 -- jitter, not cryptography
        self._metrics = metrics
        self._intake_busy = intake_busy  # files seen in the folder and not yet in the spool
        # After a 413: the next batch carries at most half of what was refused (entries and
        # bytes); lifted once a request goes through.
        self._cap_items = 0
        self._cap_bytes = 0
        self._unreachable = 0  # consecutive requests that found no connection
        self._history: tuple[float, History] | None = None  # (period start, its past days)
        self._uploads = Uploads(spool=spool, api=api, root=root, clock=clock)
        self._api_state = spool.meta_get(API_STATE_KEY)

    # -- the step ----------------------------------------------------------------------------

    def backlog(self, now: float) -> Backlog:
        """What is due now, as the pacing policy sees it. While the intake still holds files it
        has seen but not yet spooled (settling, or being read), the folder is not quiet: they
        arrive now, so a backlog read in slowly is not sent in slices."""
        backlog = self._spool.backlog(
            now, inline_max_bytes=self._inline_max, max_entries=self._max_entries
        )
        if backlog.items and self._intake_busy():
            return replace(backlog, newest_at=now)
        return backlog

    def plan(self, now: float) -> Plan:
        view = self._ledger.view()
        backlog = self.backlog(now)
        decision = plan(backlog, now, view, self._pacing, self.history(view.period_start))
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

    def step(self) -> StepOutcome:
        """Do at most one counted request's worth of work."""
        now = self._clock.time()
        self._release_stranded(now)
        self._spool.pull_back(now + LONGEST_DELAY, now=now)
        resumable = self._uploads.resumable(now)
        if resumable is not None:
            # Parts of an upload already asked for cost no request: finish them first.
            self._continue_upload(resumable)
            return StepOutcome(False, 0.0)
        decision = self.plan(now)
        if decision.send_at is None:
            next_at = self._spool.next_due_at()
            return StepOutcome(False, None if next_at is None else max(0.0, next_at - now))
        wait = max(self._ledger.wait_time(), decision.wait(now) or 0.0)
        if wait > 0:
            return StepOutcome(False, wait)
        try:
            batch = self._build(self._spool.due(now, limit=self._max_entries))
        finally:
            self._spool.release_hold()  # the item last read and parsed is out of hand
        if batch is None:
            # Everything looked at failed or changed locally; look again at once.
            return StepOutcome(False, 0.0)
        log.info("batch_planned", reason=decision.reason, entries=batch.count, bytes=batch.size)
        self._send(batch)
        return StepOutcome(True, 0.0)

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

    # -- building a batch --------------------------------------------------------------------

    def _build(self, due: Sequence[Item]) -> Batch | None:
        """The next request: due items oldest first, as many as its entries and bytes allow."""
        batch = Batch()
        max_entries = min(self._max_entries, self._cap_items or self._max_entries)
        max_bytes = min(self._inline_max, self._cap_bytes or self._inline_max)
        for item in due:
            room = max_entries - batch.count
            if room <= 0:
                break
            if item.kind == "session":
                self._add_session(batch, item, room, max_bytes)
            elif item.size > self._inline_max:
                self._add_presign(batch, item)
            else:
                self._add_file(batch, item, max_bytes)
        if batch.items and batch.count == 0:
            # Nothing valid to send: record the local verdicts without spending a request.
            self._apply_sessions(batch.session_parts, [])
            return None
        return batch if batch.items else None

    def _add_session(self, batch: Batch, item: Item, room: int, max_bytes: int) -> None:
        part = self._guarded(
            item, self._session_part, item, room, max_bytes - batch.size, first=batch.count == 0
        )
        if part is None or not part.parsed:
            return  # settled locally, or its next session does not fit beside the others
        batch.items.append(item)
        batch.session_parts.append(part)

    def _add_presign(self, batch: Batch, item: Item) -> None:
        if item.size > MAX_FILE_BYTES:
            self._fail(item, f"file is {item.size} bytes, over the 5 TiB S3 takes")
            return
        ask = self._guarded(item, self._presign_ask, item)
        if ask is None:
            return
        if batch.presigns and batch.urls + urls_for(ask) > MAX_PRESIGNED_URLS:
            return  # the next request asks for it
        batch.items.append(item)
        batch.presigns.append(PresignEntry(item, ask))

    def _presign_ask(self, item: Item) -> PresignFile | None:
        """The ask for a large file: one PUT, or parts with each part's sha256 (read from the
        file now; they are signed into the part URLs); None when the file was settled."""
        name = _upload_name(item.path)
        begun = self._uploads.begun(item)
        parts = len(begun.parts) if begun is not None else None
        if begun is None:
            parts = parts_for(item.size, self._multipart_threshold)
            if parts is None:
                return PresignFile(name, item.content_sha256, item.size)
        assert parts is not None
        digests = begun.part_sha256 if begun is not None else ()
        if not digests:
            self._spool.hold(item.id, now=self._clock.time())
            try:
                digests = part_digests(self._root, item, parts)
            except (files.FileChanged, FileRejected, OSError) as exc:
                if not (isinstance(exc, files.FileChanged) and self._recheck_changed(item)):
                    self._unreadable(item, exc)
                return None
        # A begun upload whose URLs expired: fresh ones for it; the parts sent stay sent.
        upload_id = begun.upload_id if begun is not None else None
        return PresignFile(name, item.content_sha256, item.size, parts, upload_id, digests)

    def _add_file(self, batch: Batch, item: Item, max_bytes: int) -> None:
        data = self._guarded(item, self._read, item)
        if data is None:
            return
        if not data:
            # The contract sends a CSV whatever its content; an empty one is often a failed
            # export, so it goes with a word (once per request it joins).
            log.warning("empty_file", item_id=item.id, path=str(item.path), action="sent as is")
        wire, encoding = encode_file(data)
        if batch.count and batch.size + len(wire) + ENTRY_OVERHEAD_BYTES > max_bytes:
            return  # the next request takes it
        if encoding is not None and batch.inflated + len(data) > MAX_INFLATED_BYTES:
            return
        batch.items.append(item)
        batch.files.append(
            FileEntry(
                item,
                BatchFile(_upload_name(item.path), wire, item.content_sha256, len(data), encoding),
            )
        )

    def _read(self, item: Item) -> bytes | None:
        """The spooled bytes, verified against the spooled hash; None when the item was settled.

        The item is marked in hand first: should reading or parsing it kill the daemon, the next
        start knows which item did (poison-pill quarantine, `Spool.count_crashes`).
        """
        self._spool.hold(item.id, now=self._clock.time())
        try:
            return files.read_verified(self._root, item.path, item.content_sha256, item.size)
        except (files.FileChanged, FileRejected, OSError) as exc:
            self._unreadable(item, exc)
        return None

    def _unreadable(self, item: Item, exc: files.FileChanged | FileRejected | OSError) -> None:
        """Settle an item whose file could not be read as spooled."""
        match exc:
            case files.FileChanged():
                if exc.snapshot is None:  # still being written: look again once it settles
                    self._retry_later(item, "file is changing; will read it again")
                else:
                    self._requeue_changed(item, exc.snapshot)
            case FileNotFoundError():
                self._vanished(item)
            case FileRejected():
                self._fail(item, str(exc))
            case OSError():
                self._retry_later(item, f"cannot read the file: {exc.strerror or exc}")
            case _:
                assert_never(exc)

    def _session_part(
        self, item: Item, room: int, body_room: int, *, first: bool
    ) -> SessionPart | None:
        """The slice of a session file that fits; the first of a batch always takes one session."""
        data = self._read(item)
        if data is None:
            return None
        try:
            parsed = parse_session_file(data, default_user_id=self._user_id)
        except FileRejected as exc:
            self._fail(item, str(exc))
            return None
        start = min(item.parts_done, len(parsed))
        chosen = slice_sessions(parsed, start, room, body_room, first=first)
        return SessionPart(item, chosen, start + len(chosen), len(parsed))

    def _guarded(
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
            self._retry_later(current, reason)
        else:
            self._fail(current, reason)

    # -- sending -----------------------------------------------------------------------------

    def _send(self, batch: Batch) -> None:
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
            answers = _by_kind(results, batch)
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
                self._cap_items = max(1, batch.count // 2)
                now = self._clock.time()
                self._spool.release_sending(
                    ids, at=now + retry_delay(1), error=f"internal error: {exc!r}", now=now
                )
            return
        log.info("request_sent", **shape, outcome="answered")
        self._cap_items = self._cap_bytes = 0
        self._unreachable = 0
        self._note_api_state(None)
        # Each item's answer is applied behind the per-item firewall (`_guarded`).
        self._apply_files(batch.files, answers[Kind.FILE])
        self._apply_sessions(batch.session_parts, answers[Kind.SESSION])
        self._apply_presign(batch.presigns, answers[Kind.PRESIGN])

    def _on_error(self, batch: Batch, exc: DeliveryFailure) -> None:
        """What follows a failed request. Only transient errors count against the items."""
        reason = str(exc)
        match exc:
            case PermanentError():
                self._fail_all(batch, reason)
            case RequestTooLarge() if batch.count <= 1:
                self._fail_all(batch, reason)  # one item alone is too large: it never fits
            case RequestTooLarge():
                self._hold(batch, self._shrink_next(batch), reason)
            case ProtocolError():  # before TransientError, which it is a kind of
                log.error("api_protocol_error", error=reason, items=len(batch.items))
                self._retry_items(batch.items, reason)
            case Unreachable():  # before TransientError, which it is a kind of
                self._hold(batch, self._unreachable_delay(exc), reason)
            case TransientError():
                self._retry_items(batch.items, reason)
            case Throttled():
                pause = 1.0 + self._rng.uniform(0.0, 4.0)
                self._ledger.pause(pause)
                log.warning("quota_throttled", status=exc.status, pause_seconds=round(pause, 2))
                self._hold(batch, 0.0, reason)  # the ledger holds the next request back
            case QuotaExhausted():
                self._ledger.mark_exhausted()
                resets_at = self._ledger.resets_at(self._clock.time())
                log.warning("quota_exhausted", resets_at=iso_utc(resets_at), items=len(batch.items))
                self._hold(batch, 0.0, reason)  # the ledger parks everything until the reset
            case Forbidden():
                log.error("api_forbidden", message=reason, retry_in_seconds=FORBIDDEN_DELAY)
                self._hold(batch, FORBIDDEN_DELAY, f"{KEY_REFUSED_MARK} ({reason})")
            case Redirected():
                log.error("api_redirected", message=reason, retry_in_seconds=FORBIDDEN_DELAY)
                self._hold(batch, FORBIDDEN_DELAY, reason)
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
            self._fail(item, f"refused by the API: {reason}")

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
        self._cap_items = max(1, batch.count // 2)
        self._cap_bytes = max(1, batch.size // 2)
        log.warning(
            "batch_too_large",
            items=len(batch.items),
            next_max_items=self._cap_items,
            next_max_bytes=self._cap_bytes,
        )
        return 0.0

    def _internal_error(self, item: Item, exc: Exception) -> None:
        """A request of `item` alone raised something unexpected: retried with backoff a few
        times, then failed with the exception as its reason."""
        current = self._spool.get(item.id) or item
        if current.state not in ("sending", "pending"):
            return
        if current.attempts + 1 >= INTERNAL_ERROR_ATTEMPTS:
            self._fail(current, f"{type(exc).__name__}: {exc}")
        else:
            self._retry_later(current, f"internal error: {type(exc).__name__}: {exc}")

    def _hold(self, batch: Batch, delay: float, reason: str) -> None:
        now = self._clock.time()
        ids = [item.id for item in batch.items]
        self._spool.reschedule_many(ids, at=now + delay, error=reason, now=now, count_attempt=False)

    # -- applying answers --------------------------------------------------------------------

    def _apply_files(self, entries: Sequence[FileEntry], results: Sequence[dict[str, Any]]) -> None:
        for entry, result in zip(entries, results, strict=True):
            self._guarded(entry.item, self._apply_file, entry.item, result)

    def _apply_file(self, item: Item, result: dict[str, Any]) -> None:
        status = result.get("status")
        if status in DELIVERED:
            self._delivered(item, _str_or_none(result.get("key")))
        elif status == Status.RETRY:
            self._retry_later(item, f"the API asked for a retry: {_error(result)}")
        else:
            self._fail(item, f"refused by the API: {_error(result)}")

    def _apply_sessions(
        self, parts: Sequence[SessionPart], results: Sequence[dict[str, Any]]
    ) -> None:
        now = self._clock.time()
        answers = iter(results)
        for part in parts:
            # The answers are consumed before anything can go wrong, so one part's failure
            # never shifts another's results.
            mine = [next(answers) for entry in part.parsed if entry.body is not None]
            self._guarded(part.item, self._apply_session_part, part, mine, now)

    def _apply_session_part(
        self, part: SessionPart, results: Sequence[dict[str, Any]], now: float
    ) -> None:
        answers = iter(results)
        errors = list(part.item.part_errors)
        retry: str | None = None
        for entry in part.parsed:
            if entry.body is None:
                errors.append(_session_error(entry, entry.error or "invalid"))
                continue
            result = next(answers)
            status = result.get("status")
            if status == Status.RETRY:
                retry = _error(result)
            elif status not in DELIVERED:
                errors.append(_session_error(entry, _error(result)))
        if retry is not None:
            # The slice goes again from its start; what was stored answers `duplicate`.
            self._retry_later(part.item, f"the API asked for a retry: {retry}")
        elif part.end < part.total:
            self._spool.record_parts(part.item.id, parts_done=part.end, part_errors=errors, now=now)
            self._spool.reschedule(part.item.id, at=now, error=None, now=now, count_attempt=False)
            log.info("item_progress", item_id=part.item.id, done=part.end, total=part.total)
        elif errors:
            self._spool.record_parts(part.item.id, parts_done=part.end, part_errors=errors, now=now)
            self._fail(part.item, "; ".join(errors))
        else:
            self._delivered(part.item, None)

    def _apply_presign(
        self, entries: Sequence[PresignEntry], results: Sequence[dict[str, Any]]
    ) -> None:
        for entry, result in zip(entries, results, strict=True):
            self._guarded(entry.item, self._apply_presigned, entry.item, entry.ask, result)

    def _apply_presigned(self, item: Item, ask: PresignFile, result: dict[str, Any]) -> None:
        status = result.get("status")
        key = _str_or_none(result.get("key"))
        if status == Status.REJECTED and ask.upload_id is not None:
            # The API will not resume it (begun by an older version, or its record is gone):
            # the item begins a new upload with its next request.
            self._uploads.drop(item.id)
            self._retry_later(item, f"the API refused to resume the upload: {_error(result)}")
        elif status == Status.DUPLICATE:
            self._delivered(item, key)
        elif status == Status.UPLOAD and isinstance(result.get("url"), str):
            headers = result.get("headers")
            self._put(item, result["url"], headers if isinstance(headers, dict) else {}, key)
        elif status == Status.MULTIPART:
            upload = parse_multipart(result, item, ask.part_sha256 or (), now=self._clock.time())
            if upload is None:
                self._retry_later(item, "the API answered a multipart upload without its URLs")
                return
            self._continue_upload(self._uploads.start(upload))
        elif status == Status.RETRY:
            self._retry_later(item, f"the API asked for a retry: {_error(result)}")
        else:
            self._fail(item, f"refused by the API: {_error(result)}")

    def _continue_upload(self, upload: MultipartUpload) -> None:
        item = self._spool.get(upload.item_id)
        if item is None:
            self._uploads.drop(upload.item_id)
            return
        try:
            self._uploads.run(upload, item)
        except (files.FileChanged, FileRejected, OSError) as exc:
            self._uploads.drop(item.id)
            if isinstance(exc, files.FileChanged) and self._recheck_changed(item):
                return
            self._unreadable(item, exc)
        except TransientError as exc:
            # The parts sent so far stay recorded; the rest go once the item is due again.
            self._retry_later(item, str(exc))
        except PermanentError as exc:
            self._uploads.drop(item.id)
            if exc.status == _PRECONDITION_FAILED:
                # The key holds an object already (another upload of the same file completed
                # first): the next ask learns whether it is this file's.
                self._retry_later(item, str(exc))
            elif not self._recheck_changed(item):
                self._fail(item, str(exc))
        else:
            self._delivered(item, upload.key)

    def _put(self, item: Item, url: str, headers: dict[str, str], key: str | None) -> None:
        try:
            stream = files.open_verified_stream(
                self._root, item.path, item.content_sha256, item.size
            )
        except (files.FileChanged, FileRejected, OSError) as exc:
            self._unreadable(item, exc)
            return
        log.info("upload_started", item_id=item.id, path=str(item.path), size=item.size)
        with stream:
            try:
                self._api.put_presigned(url, headers, stream)
                stream.verify()
            except files.FileChanged:
                if not self._recheck_changed(item):
                    self._retry_later(item, "file changed while it was uploaded")
                return
            except TransientError as exc:
                # A body refused as torn may be a file that changed under the PUT.
                if not self._recheck_changed(item):
                    self._retry_later(item, str(exc))
                return
            except PermanentError as exc:
                # S3 checks the sha256 header: a refusal usually means the file changed.
                if not self._recheck_changed(item):
                    self._fail(item, str(exc))
                return
        self._delivered(item, key)

    # -- item outcomes -----------------------------------------------------------------------

    def _delivered(self, item: Item, key: str | None) -> None:
        self._uploads.drop(item.id)
        now = self._clock.time()
        superseded = self._spool.mark_delivered(item.id, now=now, remote_key=key)
        if superseded:
            log.info("failed_superseded", path=str(item.path), by_item_id=item.id, items=superseded)
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

    def _fail(self, item: Item, reason: str, *, vanished: bool = False) -> None:
        self._uploads.drop(item.id)
        self._spool.mark_failed(item.id, reason, now=self._clock.time(), vanished=vanished)
        log.warning("item_failed", item_id=item.id, path=str(item.path), reason=reason)

    def _vanished(self, item: Item) -> None:
        # Should the file come back (even renamed back with its old mtime), it is spooled again.
        self._fail(item, "file was deleted before it could be delivered", vanished=True)

    def _retry_later(self, item: Item, reason: str) -> None:
        self._retry_items([item], reason)

    def _retry_items(self, items: Sequence[Item], reason: str) -> None:
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

    def _requeue_changed(self, item: Item, snap: files.FileSnapshot) -> None:
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

    def _recheck_changed(self, item: Item) -> bool:
        """After a size or checksum mismatch: requeue new content; False if it is unchanged."""
        try:
            snap = files.snapshot(self._root, item.path)
        except FileNotFoundError:
            self._vanished(item)
            return True
        except FileRejected as exc:
            self._fail(item, str(exc))
            return True
        if snap.sha256 == item.content_sha256:
            return False
        self._requeue_changed(item, snap)
        return True


def _upload_name(path: Path) -> str:
    return wire_name(path)


def _session_error(entry: ParsedSession, error: str) -> str:
    who = f" ({entry.user_id} {entry.timestamp})" if entry.user_id or entry.timestamp else ""
    return f"session {entry.index}{who}: {error}"


def _error(result: dict[str, Any]) -> str:
    return str(result.get("error") or result.get("status") or "rejected")


def _by_kind(results: Sequence[dict[str, Any]], batch: Batch) -> dict[Kind, list[dict[str, Any]]]:
    """The answers per kind of entry, in request order; a count that does not match is a
    malformed answer, retried like a 5xx."""
    answers = {kind: results_of_kind(results, kind) for kind in Kind}
    expected = {
        Kind.FILE: len(batch.files),
        Kind.SESSION: len(batch.bodies),
        Kind.PRESIGN: len(batch.presigns),
    }
    if any(len(answers[k]) != n for k, n in expected.items()):
        raise TransientError(
            f"the API answered {len(results)} results that do not match the request"
        )
    unknown = sorted({repr(r.get("status")) for r in results} - _NAMED_STATUSES)
    if unknown:
        # Before any answer is applied: the whole request is in doubt (CONTRACT §3a).
        raise ProtocolError(f"the API answered a status the contract does not name: {unknown[0]}")
    return answers


# `repr` of every status the contract names, so a non-string status is unknown too.
_NAMED_STATUSES = frozenset(repr(str(s)) for s in Status)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
