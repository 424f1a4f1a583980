"""The /batch answer narrowed at the boundary: typed where it is well formed, and a malformed
one handled as the delivery step always handled it."""

from __future__ import annotations

from typing import Any

import pytest

from exportsync.errors import ProtocolError, TransientError
from exportsync.replies import by_kind

SHA = "ab" * 32


def _multipart() -> dict[str, Any]:
    return {
        "kind": "presign",
        "filename": "big.csv",
        "key": f"uploads/u/{SHA}/big.csv",
        "status": "multipart",
        "upload_id": "up-1",
        "part_size": 8,
        "parts": [{"number": 1, "url": "http://s3/p1", "headers": {"Content-Length": "8"}}],
        "complete": {"url": "http://s3/c", "method": "POST", "headers": {"If-None-Match": "*"}},
        "expires_at": "2027-01-15T00:15:00Z",
    }


def test_a_well_formed_answer_is_narrowed_to_itself() -> None:
    file = {
        "kind": "file",
        "filename": "a.csv",
        "key": f"uploads/u/{SHA}/a.csv",
        "sha256": SHA,
        "size": 3,
        "status": "stored",
    }
    session = {"kind": "session", "user_id": "u", "timestamp": "t", "status": "rejected",
               "error": "invalid_session: no"}  # fmt: skip
    single = {
        "kind": "presign",
        "filename": "b.csv",
        "key": f"uploads/u/{SHA}/b.csv",
        "status": "upload",
        "url": "http://s3/b",
        "method": "PUT",
        "headers": {"x-amz-checksum-sha256": "q83v"},
        "expires_at": "2027-01-15T00:15:00Z",
    }
    answered = by_kind([file, session, single, _multipart()], files=1, sessions=1, presign=2)
    without_kind = [
        {k: v for k, v in r.items() if k != "kind"} for r in (file, session, single, _multipart())
    ]
    assert [*answered.files, *answered.sessions, *answered.presign] == without_kind


def test_fields_of_the_wrong_type_are_left_out_or_empty() -> None:
    bad = {
        **_multipart(),
        "key": 7,
        "headers": {"x-amz-checksum-sha256": 1},
        "parts": [{"number": "1", "url": "http://s3/p1"}],  # a number as text: no parts
        "complete": {"method": "POST"},  # no URL
        "expires_at": 1_800_000_000,
    }
    [result] = by_kind([bad], files=0, sessions=0, presign=1).presign
    assert result["key"] is None
    for field in ("headers", "parts", "complete", "expires_at"):
        assert field not in result
    [sparse] = by_kind(
        [{"kind": "file", "status": "duplicate"}], files=1, sessions=0, presign=0
    ).files
    assert (sparse["key"], sparse["filename"], sparse["status"]) == (None, None, "duplicate")


def test_a_count_off_is_transient_and_an_unnamed_status_a_protocol_error() -> None:
    with pytest.raises(TransientError, match="do not match"):
        by_kind([{"kind": "file", "status": "stored"}], files=2, sessions=0, presign=0)
    for status in ("ok", 1, None):
        with pytest.raises(ProtocolError, match="does not name"):
            by_kind([{"kind": "file", "status": status}], files=1, sessions=0, presign=0)
    # A result of a kind the request did not ask for is not counted, as before.
    extra = [{"kind": "file", "status": "stored"}, {"kind": "other", "status": "stored"}]
    assert len(by_kind(extra, files=1, sessions=0, presign=0).files) == 1
