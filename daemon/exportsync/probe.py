"""`exportsync check --probe`: spend one request to learn whose key this is.

The request is one `POST /batch` holding a single presign ask for an empty file. It stores nothing
(a presigned URL nobody uses), and its answer's object key, ``uploads/{user}/{sha256}/{name}``,
names the user the server took from the API key. The request is counted in the spool's quota
ledger before it goes, as the daemon counts its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import unquote

from exportsync.client import Api, BatchRequest
from exportsync.errors import DeliveryError, Forbidden
from exportsync.replies import by_kind
from exportsync_wire import PresignFile

__all__ = ["PROBE_NAME", "ProbeResult", "key_user_of", "probe"]

PROBE_NAME = "exportsync-probe"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class ProbeResult:
    """`user` when the key was accepted; `refused` when the gateway said 403; else `error`."""

    user: str | None = None
    refused: bool = False
    error: str | None = None


def key_user_of(object_key: str) -> str | None:
    """The user segment of ``uploads/{user}/…`` (percent-encoded by the server), or None."""
    parts = object_key.split("/")
    if len(parts) < 4 or parts[0] != "uploads" or not parts[1]:
        return None
    return unquote(parts[1])


def probe(api: Api) -> ProbeResult:
    """One counted request; what it says about the key."""
    try:
        results = api.batch(BatchRequest(presign=[PresignFile(PROBE_NAME, _EMPTY_SHA256, 0)]))
        [answer] = by_kind(results, files=0, sessions=0, presign=1).presign
    except Forbidden:
        return ProbeResult(refused=True)
    except DeliveryError as exc:
        return ProbeResult(error=str(exc))
    user = key_user_of(answer["key"]) if answer["key"] is not None else None
    if user is None:
        return ProbeResult(error="the answer named no object key to read the key's user from")
    return ProbeResult(user=user)
