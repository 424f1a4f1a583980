"""The verifier: a completed multipart object's bytes are hashed and compared with the sha256
its key names (``uploads/{user}/{sha256}/{name}``); on a mismatch the object is deleted.

S3 pins every part (each part URL signs its checksum) and the completion (it signs the parts'
composite sha256 and the object's size), so the object is exactly the parts its client
declared; only reading it proves those parts make the file the key names. The completion is a
presigned request the client sends to S3 itself, so the check runs where the server sees the
object appear: on AWS a second function invoked by the bucket's ``Object Created`` event
(EventBridge, reason ``CompleteMultipartUpload``), on the devstack the strict S3 front before it
answers the completion. Until the record says ``verified`` an ask for the key answers ``retry``,
never ``duplicate``; a resume of a deleted upload answers ``rejected``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger

from exportsync_wire import Status

from .resume import RecordState, UploadRecord
from .stores import ObjectStore

__all__ = ["completed_keys", "handler", "verify_completed"]

logger = Logger(service="exportsync-verify")

_PREFIX = "uploads/"


def verify_completed(store: ObjectStore, key: str) -> Status | None:
    """Hash the object at ``key``: STORED when its bytes are the sha256 the key names (the
    record is marked verified), REJECTED when not (the object version is deleted and the
    record marked rejected); None when there is nothing to verify."""
    parts = key.split("/")
    if len(parts) < 4 or not key.startswith(_PREFIX):
        return None
    expected = parts[2]
    found = store.object_sha256(key)
    if found is None:
        return None
    actual, version = found
    record = UploadRecord.from_json(store.load_record(key))
    if actual == expected:
        if record is not None:
            store.save_record(key, record.marked(RecordState.VERIFIED).to_json())
        logger.info("upload_verified", key=key)
        return Status.STORED
    store.delete_version(key, version)
    if record is not None:
        store.save_record(key, record.marked(RecordState.REJECTED).to_json())
    logger.warning("upload_rejected", key=key, reason="sha256 differs from the key's")
    return Status.REJECTED


def completed_keys(event: Mapping[str, Any]) -> list[str]:
    """Object keys an S3 event names: EventBridge (``detail.object.key``) or an S3
    notification (``Records[].s3.object.key``, URL-encoded)."""
    detail = event.get("detail")
    if isinstance(detail, Mapping):
        key = (detail.get("object") or {}).get("key")
        return [str(key)] if isinstance(key, str) else []
    records = event.get("Records")
    keys: list[str] = []
    for record in records if isinstance(records, Iterable) else []:
        key = ((record.get("s3") or {}).get("object") or {}).get("key")
        if isinstance(key, str):
            keys.append(unquote_plus(key))
    return keys


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point of the verifier function (``exportsync_api.verify.handler``)."""
    from .app import default_dependencies  # noqa: PLC0415 -- the API's clients, built once

    store = default_dependencies().objects
    outcomes = {key: verify_completed(store, key) for key in completed_keys(event)}
    return {"verified": {key: str(status) for key, status in outcomes.items()}}
