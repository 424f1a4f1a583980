"""Content pinned end to end (CONTRACT §3b), on the function's side: every presigned PUT and part
signs its checksum, the completion signs the parts' composite and the size, an upload id resumes
only for the user, key, sha256 and size that began it, a completed object whose bytes are not the
key's sha256 is deleted and answered ``rejected``, and presigned URLs live at most 900 s."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from apigw_events import body_of, rest_event
from botocore.config import Config
from fakes import MemoryObjectStore
from lambda_support import KEY_USERS

from exportsync_api import app
from exportsync_api.app import Dependencies, handle
from exportsync_api.settings import MAX_PRESIGN_SECONDS, ConfigError, load_settings
from exportsync_api.stores import S3ObjectStore
from exportsync_api.verify import completed_keys, handler, verify_completed
from exportsync_wire import Status
from exportsync_wire.parts import checksum_b64, composite_sha256, plan_parts

_MIB = 1024 * 1024
_GIB = 1024 * _MIB
_TEMPLATE = Path(__file__).parents[2] / "lambda" / "template.yaml"


def _content(size: int, seed: bytes = b"x") -> bytes:
    return (seed * size)[:size]


def _digests(data: bytes, parts: int) -> list[str]:
    plan = plan_parts(len(data), parts)
    return [
        hashlib.sha256(data[n * plan.part_size : (n + 1) * plan.part_size]).hexdigest()
        for n in range(plan.count)
    ]


def _ask(data: bytes, name: str = "big.csv", parts: int = 3, **extra: object) -> dict[str, Any]:
    return {
        "filename": name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "parts": parts,
        "part_sha256": _digests(data, parts),
        **extra,
    }


def _presign(deps: Dependencies, *files: dict[str, Any], key_id: str = "kid-alice") -> list[Any]:
    event = rest_event("/presign", json.dumps({"files": list(files)}), api_key_id=key_id)
    response = handle(event, None, deps)
    assert response["statusCode"] == 200, response["body"]
    results: list[Any] = body_of(response)["results"]
    return results


@pytest.fixture
def two_users(memory_deps: Dependencies) -> Dependencies:
    users = {**KEY_USERS, "kid-bob": "bob"}
    return replace(memory_deps, settings=replace(memory_deps.settings, key_users=users))


def _store(deps: Dependencies) -> MemoryObjectStore:
    assert isinstance(deps.objects, MemoryObjectStore)
    return deps.objects


# -- what the URLs sign -----------------------------------------------------------------------


def _signed(url: str) -> set[str]:
    return set(parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"][0].split(";"))


def test_part_and_completion_urls_sign_the_checksums_and_the_size() -> None:
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(signature_version="s3v4"),
    )
    store = S3ObjectStore(client, "bucket-one")
    part = store.presign_part("uploads/a/x/f.csv", "u1", 1, 5 * _MIB, "ab" * 32, expires_in=900)
    assert {"content-length", "x-amz-checksum-sha256"} <= _signed(part)
    complete = store.presign_complete("uploads/a/x/f.csv", "u1", "Zm9v", 10 * _MIB, 900)
    assert {"x-amz-checksum-sha256", "x-amz-mp-object-size", "if-none-match"} <= _signed(complete)


def test_a_multipart_answer_carries_each_parts_checksum_and_the_signed_completion(
    memory_deps: Dependencies,
) -> None:
    data = _content(16 * _MIB + 7)
    [answer] = _presign(memory_deps, _ask(data))
    digests = _digests(data, 3)
    assert answer["status"] == "multipart"
    assert [p["headers"]["x-amz-checksum-sha256"] for p in answer["parts"]] == [
        checksum_b64(d) for d in digests
    ]
    assert answer["complete"]["headers"] == {
        "x-amz-checksum-sha256": composite_sha256(digests),
        "x-amz-mp-object-size": str(len(data)),
        "If-None-Match": "*",
    }
    signed = _store(memory_deps).signed
    assert [s["sha256"] for s in signed if "part" in s] == digests
    assert [s["size"] for s in signed if "complete" in s] == [len(data)]


def test_a_multipart_ask_without_part_digests_gets_one_checksummed_put_or_is_refused(
    memory_deps: Dependencies,
) -> None:
    older = _ask(_content(16 * _MIB))
    del older["part_sha256"]
    huge = {"filename": "huge.csv", "sha256": "ab" * 32, "size": 6 * _GIB}
    fits, too_big = _presign(memory_deps, older, huge)
    assert fits["status"] == "upload"  # an older client: one PUT, signed with its checksum
    assert fits["headers"]["x-amz-checksum-sha256"] == checksum_b64(older["sha256"])
    assert too_big["status"] == "rejected"
    assert too_big["error"].startswith("part_sha256_required:")
    assert _store(memory_deps).uploads == []


def test_part_digests_must_match_the_plan(memory_deps: Dependencies) -> None:
    ask = _ask(_content(16 * _MIB))
    ask["part_sha256"] = ask["part_sha256"][:2]
    [answer] = _presign(memory_deps, ask)
    assert answer["status"] == "rejected"
    assert "part_sha256 must hold 3 digests" in answer["error"]


# -- resuming ---------------------------------------------------------------------------------


def test_another_users_upload_id_is_refused(two_users: Dependencies) -> None:
    data = _content(16 * _MIB, b"b")
    [bobs] = _presign(two_users, _ask(data), key_id="kid-bob")
    assert bobs["key"].startswith("uploads/bob/")
    # Alice names Bob's upload id for the same file: her key is her own, and the id is not hers.
    [alices] = _presign(two_users, _ask(data, upload_id=bobs["upload_id"]))
    assert alices["status"] == "rejected"
    assert alices["error"].startswith("unknown_upload:")
    assert "parts" not in alices
    assert "complete" not in alices
    assert len(_store(two_users).uploads) == 1  # nothing begun for her either


def test_an_upload_id_of_another_file_of_the_same_user_is_refused(
    memory_deps: Dependencies,
) -> None:
    [first] = _presign(memory_deps, _ask(_content(16 * _MIB, b"1"), name="one.csv"))
    other = _ask(_content(16 * _MIB, b"2"), name="two.csv", upload_id=first["upload_id"])
    [answer] = _presign(memory_deps, other)
    assert answer["status"] == "rejected"
    assert answer["error"].startswith("unknown_upload:")


def test_a_resume_with_another_size_is_refused(memory_deps: Dependencies) -> None:
    data = _content(16 * _MIB)
    [first] = _presign(memory_deps, _ask(data))
    bigger = _ask(data, upload_id=first["upload_id"])
    bigger["size"] = len(data) + 5 * _MIB  # same sha256 and name, so the same key
    bigger["part_sha256"] = _digests(data + _content(5 * _MIB), 3)
    [answer] = _presign(memory_deps, bigger)
    assert answer["status"] == "rejected"
    assert answer["error"].startswith("upload_mismatch:")
    # With other part digests but the same size, too: the parts sent were signed with the first.
    other_parts = _ask(data, upload_id=first["upload_id"])
    other_parts["part_sha256"] = _digests(_content(16 * _MIB, b"y"), 3)
    [answer] = _presign(memory_deps, other_parts)
    assert answer["status"] == "rejected"


def test_a_resume_of_its_own_upload_presigns_it_again(memory_deps: Dependencies) -> None:
    data = _content(16 * _MIB)
    [first] = _presign(memory_deps, _ask(data))
    [again] = _presign(memory_deps, _ask(data, upload_id=first["upload_id"]))
    assert (again["status"], again["upload_id"]) == ("multipart", first["upload_id"])
    assert len(_store(memory_deps).uploads) == 1


# -- the completed object ---------------------------------------------------------------------


def test_a_completed_object_of_other_bytes_is_deleted_and_its_upload_answered_rejected(
    memory_deps: Dependencies,
) -> None:
    data = _content(16 * _MIB)
    [first] = _presign(memory_deps, _ask(data))
    store = _store(memory_deps)
    store.objects[first["key"]] = _content(16 * _MIB, b"z")  # completed with other parts
    # Until verified, the object is never a duplicate, by /presign or /upload.
    [waiting] = _presign(memory_deps, _ask(data))
    assert (waiting["status"], waiting["error"].split(":")[0]) == ("retry", "verifying")

    assert verify_completed(store, first["key"]) == "rejected"
    assert first["key"] not in store.objects
    [resumed] = _presign(memory_deps, _ask(data, upload_id=first["upload_id"]))
    assert resumed["status"] == "rejected"
    assert resumed["error"].startswith("content_mismatch:")
    # The genuine file, asked afresh, gets a new upload: never "duplicate" of the wrong bytes.
    [fresh] = _presign(memory_deps, _ask(data))
    assert fresh["status"] == "multipart"
    assert fresh["upload_id"] != first["upload_id"]


def test_a_completed_object_of_the_right_bytes_is_verified_then_duplicate(
    memory_deps: Dependencies,
) -> None:
    data = _content(16 * _MIB)
    [first] = _presign(memory_deps, _ask(data))
    store = _store(memory_deps)
    store.objects[first["key"]] = data
    assert verify_completed(store, first["key"]) == "stored"
    [again] = _presign(memory_deps, _ask(data))
    assert again["status"] == "duplicate"


def test_an_inline_upload_of_a_file_whose_multipart_twin_is_unverified_is_not_duplicate(
    memory_deps: Dependencies,
) -> None:
    data = b"a,b\n1,2\n"
    [first] = _presign(memory_deps, _ask(data, parts=1))
    _store(memory_deps).objects[first["key"]] = b"a,b\n6,6\n"  # other bytes, not verified yet
    body = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\n" + data + b"\r\n--B--\r\n"
    )
    event = rest_event("/upload", body, content_type="multipart/form-data; boundary=B")
    [result] = body_of(handle(event, None, memory_deps))["results"]
    assert result["status"] == "retry"


def test_the_verifier_reads_eventbridge_and_s3_notification_events() -> None:
    bridge = {"detail": {"object": {"key": "uploads/a/x/f 1.csv"}}}
    notification = {"Records": [{"s3": {"object": {"key": "uploads/a/x/f+1.csv"}}}]}
    assert completed_keys(bridge) == completed_keys(notification) == ["uploads/a/x/f 1.csv"]


# -- lifetime -----------------------------------------------------------------------------------


def test_presigned_urls_live_at_most_900_seconds() -> None:
    base = {"EXPORTSYNC_BUCKET": "b", "EXPORTSYNC_TABLE": "t"}
    assert load_settings(base).presign_seconds == MAX_PRESIGN_SECONDS == 900
    assert load_settings({**base, "EXPORTSYNC_PRESIGN_SECONDS": "900"}).presign_seconds == 900
    with pytest.raises(ConfigError, match="EXPORTSYNC_PRESIGN_SECONDS"):
        load_settings({**base, "EXPORTSYNC_PRESIGN_SECONDS": "43200"})
    block = re.search(r"\n  PresignSeconds:\n((?:    .*\n)+)", _TEMPLATE.read_text())
    assert block is not None
    limit = re.search(r"MaxValue: (\d+)", block.group(1))
    assert limit is not None
    assert int(limit.group(1)) <= 900


def test_an_object_stored_whole_is_a_duplicate_whatever_a_multipart_record_says(
    memory_deps: Dependencies,
) -> None:
    """Only an object assembled from parts waits for the verifier: a single PUT's or an inline
    upload's bytes were checked by S3 against the key's sha256 when they were written."""
    data = b"a,b\n1,2\n"
    [begun] = _presign(memory_deps, _ask(data, parts=1))  # a record, never completed
    store = _store(memory_deps)
    stored = store.put_if_absent(begun["key"], data, hashlib.sha256(data).hexdigest())
    assert stored == Status.STORED
    [again] = _presign(memory_deps, _ask(data, parts=1))
    assert again["status"] == "duplicate"


def test_the_verifier_function_deletes_what_its_event_names_when_the_bytes_differ(
    memory_deps: Dependencies, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _content(16 * _MIB)
    [begun] = _presign(memory_deps, _ask(data))
    store = _store(memory_deps)
    store.objects[begun["key"]] = data[:-1] + b"!"
    monkeypatch.setattr(app, "default_dependencies", lambda: memory_deps)
    event = {"detail": {"object": {"key": begun["key"]}, "reason": "CompleteMultipartUpload"}}
    assert handler(event) == {"verified": {begun["key"]: "rejected"}}
    assert begun["key"] not in store.objects
