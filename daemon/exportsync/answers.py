"""Applying the API's answer to each entry of a request, and the presigned uploads that follow.

An entry's answer decides its item alone (each behind the per-item firewall): delivered, retried,
refused, or, for a large file, the presigned PUT (one stream, or parts of a multipart upload) whose
bytes go straight to S3. Those PUTs do not count against the usage plan.
"""

from __future__ import annotations

from collections.abc import Sequence

from exportsync.batches import FileEntry, PresignEntry, SessionPart
from exportsync.client import Api
from exportsync.clock import Clock
from exportsync.config import WatchConfig
from exportsync.errors import FileRejected, PermanentError, TransientError
from exportsync.fs import files
from exportsync.logs import get_logger
from exportsync.multipart import MultipartUpload, Uploads, parse_multipart
from exportsync.outcomes import Outcomes
from exportsync.sessions import ParsedSession
from exportsync.spool import Item, Spool
from exportsync_wire import (
    DELIVERED,
    PresignFile,
    PresignResultJson,
    SessionResultJson,
    Status,
    UploadResultJson,
)

__all__ = ["Answers"]

log = get_logger(__name__)

# S3's answer to a completion whose If-None-Match: * finds an object at the key.
_PRECONDITION_FAILED = 412


class Answers:
    """What each entry's answer means for its item."""

    def __init__(
        self,
        *,
        spool: Spool,
        api: Api,
        clock: Clock,
        watch: WatchConfig,
        uploads: Uploads,
        outcomes: Outcomes,
    ) -> None:
        self._spool = spool
        self._api = api
        self._clock = clock
        self._root = watch.dir
        self._uploads = uploads
        self._outcomes = outcomes

    def apply_files(
        self, entries: Sequence[FileEntry], results: Sequence[UploadResultJson]
    ) -> None:
        """Each file's answer; the delivered ones are recorded together (one transaction)."""
        delivered: list[tuple[Item, str | None]] = []
        for entry, result in zip(entries, results, strict=True):
            self._outcomes.guarded(entry.item, self._apply_file, entry.item, result, delivered)
        self._outcomes.delivered_many(delivered)

    def _apply_file(
        self, item: Item, result: UploadResultJson, delivered: list[tuple[Item, str | None]]
    ) -> None:
        status = result["status"]
        if status in DELIVERED:
            delivered.append((item, result["key"]))
        elif status == Status.RETRY:
            self._outcomes.retry_later(item, f"the API asked for a retry: {_error(result)}")
        else:
            self._outcomes.fail(item, f"refused by the API: {_error(result)}")

    def apply_sessions(
        self, parts: Sequence[SessionPart], results: Sequence[SessionResultJson]
    ) -> None:
        """The sessions' answers; with no results, the local verdicts of sessions that were
        invalid before any request."""
        now = self._clock.time()
        answers = iter(results)
        for part in parts:
            # The answers are consumed before anything can go wrong, so one part's failure
            # never shifts another's results.
            mine = [next(answers) for entry in part.parsed if entry.body is not None]
            self._outcomes.guarded(part.item, self._apply_session_part, part, mine, now)

    def _apply_session_part(
        self, part: SessionPart, results: Sequence[SessionResultJson], now: float
    ) -> None:
        answers = iter(results)
        errors = list(part.item.part_errors)
        retry: str | None = None
        for entry in part.parsed:
            if entry.body is None:
                errors.append(_session_error(entry, entry.error or "invalid"))
                continue
            result = next(answers)
            status = result["status"]
            if status == Status.RETRY:
                retry = _error(result)
            elif status not in DELIVERED:
                errors.append(_session_error(entry, _error(result)))
        if retry is not None:
            # The slice goes again from its start; what was stored answers `duplicate`.
            self._outcomes.retry_later(part.item, f"the API asked for a retry: {retry}")
        elif part.end < part.total:
            self._spool.record_parts(part.item.id, parts_done=part.end, part_errors=errors, now=now)
            self._spool.reschedule(part.item.id, at=now, error=None, now=now, count_attempt=False)
            log.info("item_progress", item_id=part.item.id, done=part.end, total=part.total)
        elif errors:
            self._spool.record_parts(part.item.id, parts_done=part.end, part_errors=errors, now=now)
            self._outcomes.fail(part.item, "; ".join(errors))
        else:
            self._outcomes.delivered(part.item, None)

    def apply_presign(
        self, entries: Sequence[PresignEntry], results: Sequence[PresignResultJson]
    ) -> None:
        for entry, result in zip(entries, results, strict=True):
            self._outcomes.guarded(entry.item, self._apply_presigned, entry.item, entry.ask, result)

    def _apply_presigned(self, item: Item, ask: PresignFile, result: PresignResultJson) -> None:
        status = result["status"]
        key = result["key"]
        if status == Status.REJECTED and ask.upload_id is not None:
            # The API will not resume it (begun by an older version, or its record is gone):
            # the item begins a new upload with its next request.
            self._uploads.drop(item.id)
            self._outcomes.retry_later(
                item, f"the API refused to resume the upload: {_error(result)}"
            )
        elif status == Status.DUPLICATE:
            self._outcomes.delivered(item, key)
        elif status == Status.UPLOAD and "url" in result:
            self._put(item, result["url"], result.get("headers", {}), key)
        elif status == Status.MULTIPART:
            upload = parse_multipart(result, item, ask.part_sha256 or (), now=self._clock.time())
            if upload is None:
                self._outcomes.retry_later(
                    item, "the API answered a multipart upload without its URLs"
                )
                return
            self.continue_upload(self._uploads.start(upload))
        elif status == Status.RETRY:
            self._outcomes.retry_later(item, f"the API asked for a retry: {_error(result)}")
        else:
            self._outcomes.fail(item, f"refused by the API: {_error(result)}")

    def continue_upload(self, upload: MultipartUpload) -> None:
        """Send the parts of `upload` not yet sent, and complete it."""
        item = self._spool.get(upload.item_id)
        if item is None:
            self._uploads.drop(upload.item_id)
            return
        try:
            self._uploads.run(upload, item)
        except (files.FileChanged, FileRejected, OSError) as exc:
            self._uploads.drop(item.id)
            if isinstance(exc, files.FileChanged) and self._outcomes.recheck_changed(item):
                return
            self._outcomes.unreadable(item, exc)
        except TransientError as exc:
            # The parts sent so far stay recorded; the rest go once the item is due again.
            self._outcomes.retry_later(item, str(exc))
        except PermanentError as exc:
            self._uploads.drop(item.id)
            if exc.status == _PRECONDITION_FAILED:
                # The key holds an object already (another upload of the same file completed
                # first): the next ask learns whether it is this file's.
                self._outcomes.retry_later(item, str(exc))
            elif not self._outcomes.recheck_changed(item):
                self._outcomes.fail(item, str(exc))
        else:
            self._outcomes.delivered(item, upload.key)

    def _put(self, item: Item, url: str, headers: dict[str, str], key: str | None) -> None:
        try:
            stream = files.open_verified_stream(
                self._root, item.path, item.content_sha256, item.size
            )
        except (files.FileChanged, FileRejected, OSError) as exc:
            self._outcomes.unreadable(item, exc)
            return
        log.info("upload_started", item_id=item.id, path=str(item.path), size=item.size)
        with stream:
            try:
                self._api.put_presigned(url, headers, stream)
                stream.verify()
            except files.FileChanged:
                if not self._outcomes.recheck_changed(item):
                    self._outcomes.retry_later(item, "file changed while it was uploaded")
                return
            except TransientError as exc:
                # A body refused as torn may be a file that changed under the PUT.
                if not self._outcomes.recheck_changed(item):
                    self._outcomes.retry_later(item, str(exc))
                return
            except PermanentError as exc:
                # S3 checks the sha256 header: a refusal usually means the file changed.
                if not self._outcomes.recheck_changed(item):
                    self._outcomes.fail(item, str(exc))
                return
        self._outcomes.delivered(item, key)


def _session_error(entry: ParsedSession, error: str) -> str:
    who = f" ({entry.user_id} {entry.timestamp})" if entry.user_id or entry.timestamp else ""
    return f"session {entry.index}{who}: {error}"


def _error(result: UploadResultJson | SessionResultJson | PresignResultJson) -> str:
    return result.get("error") or str(result["status"])
