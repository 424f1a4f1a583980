"""Multipart presign: how files are cut into parts, and the answers /presign and /batch give."""

from __future__ import annotations

import hashlib
import json

from apigw_events import body_of, rest_event
from fakes import MemoryObjectStore
from hypothesis import given
from hypothesis import strategies as st

from exportsync_api.app import Dependencies, handle
from exportsync_api.multipart import plan_parts
from exportsync_api.presign import check_file
from exportsync_api.verify import verify_completed
from exportsync_wire import limits
from exportsync_wire.parts import checksum_b64, composite_sha256

_MIB = 1024 * 1024
_GIB = 1024 * _MIB


def test_part_plans_follow_the_ask_within_s3_limits() -> None:
    assert plan_parts(300 * _MIB, 3).part_size == 100 * _MIB
    assert plan_parts(100 * _MIB, 1000) == plan_parts(100 * _MIB, 20)  # 5 MiB parts at least
    assert plan_parts(6 * _GIB, None).part_size == 64 * _MIB  # the server's choice
    five_tib = plan_parts(limits.OBJECT_BYTES, 10_000)
    assert (five_tib.part_size, five_tib.count) == (limits.PART_MAX_BYTES, limits.PARTS_PER_FILE)
    assert plan_parts(0, 4).lengths(0) == [0]
    assert plan_parts(3, 4).lengths(3) == [3]


@given(st.integers(1, limits.OBJECT_BYTES), st.none() | st.integers(1, 10_000))
def test_parts_cover_the_file_within_s3_part_limits(size: int, asked: int | None) -> None:
    plan = plan_parts(size, asked)
    lengths = plan.lengths(size)
    assert sum(lengths) == size
    assert len(lengths) == plan.count <= limits.PARTS_PER_FILE
    assert all(limits.PART_MIN_BYTES <= n <= limits.PART_MAX_BYTES for n in lengths[:-1])
    assert 0 < lengths[-1] <= limits.PART_MAX_BYTES


def test_presign_entries_check_parts_and_size() -> None:
    sha = "a" * 64
    assert isinstance(check_file("f", {"filename": "x", "sha256": sha, "size": 1, "parts": 0}), str)
    too_big = {"filename": "x", "sha256": sha, "size": limits.OBJECT_BYTES + 1}
    assert isinstance(check_file("f", too_big), str)
    checked = check_file("f", {"filename": "x", "sha256": sha, "size": 6 * _GIB})
    assert not isinstance(checked, str)
    assert checked.multipart


def _presign(deps: Dependencies, *files: dict[str, object]) -> list[dict[str, object]]:
    response = handle(rest_event("/presign", json.dumps({"files": list(files)})), None, deps)
    assert response["statusCode"] == 200
    results: list[dict[str, object]] = body_of(response)["results"]
    return results


def _ask(name: str, size: int, **extra: object) -> dict[str, object]:
    sha = hashlib.sha256(name.encode()).hexdigest()
    ask: dict[str, object] = {"filename": name, "sha256": sha, "size": size, **extra}
    if size > 5 * _GIB or "parts" in extra:
        # Each part's sha256, as the client would send them (any digests do for the fakes).
        asked = extra.get("parts")
        count = plan_parts(size, asked if isinstance(asked, int) else None).count
        ask["part_sha256"] = [hashlib.sha256(b"%d" % n).hexdigest() for n in range(count)]
    return ask


def test_large_or_asked_files_get_a_whole_presigned_multipart_upload(
    memory_deps: Dependencies,
) -> None:
    small, asked, huge = _presign(
        memory_deps,
        _ask("small.csv", 10),
        _ask("asked.csv", 12 * _MIB, parts=2),
        _ask("huge.csv", 6 * _GIB),
    )
    assert small["status"] == "upload"
    assert asked["status"] == "multipart"
    assert asked["part_size"] == 6 * _MIB
    assert asked["parts"] == [
        {
            "number": n,
            "url": f"https://bucket.example/{asked['key']}?uploadId={asked['upload_id']}"
            f"&partNumber={n}",
            "headers": {
                "Content-Length": str(6 * _MIB),
                "x-amz-checksum-sha256": checksum_b64(hashlib.sha256(b"%d" % (n - 1)).hexdigest()),
            },
        }
        for n in (1, 2)
    ]
    digests = [hashlib.sha256(b"%d" % n).hexdigest() for n in range(2)]
    assert asked["complete"] == {
        "url": f"https://bucket.example/{asked['key']}?uploadId={asked['upload_id']}",
        "method": "POST",
        "headers": {
            "x-amz-checksum-sha256": composite_sha256(digests),
            "x-amz-mp-object-size": str(12 * _MIB),
            "If-None-Match": "*",
        },
    }
    assert huge["status"] == "multipart"
    assert isinstance(huge["parts"], list)
    assert len(huge["parts"]) == 96


def test_resuming_an_upload_presigns_its_parts_again(memory_deps: Dependencies) -> None:
    [first] = _presign(memory_deps, _ask("a.csv", 12 * _MIB, parts=2))
    [again] = _presign(memory_deps, _ask("a.csv", 12 * _MIB, parts=2, upload_id=first["upload_id"]))
    assert again["upload_id"] == first["upload_id"]
    assert isinstance(memory_deps.objects, MemoryObjectStore)
    assert len(memory_deps.objects.uploads) == 1  # no new upload was started


def test_a_stored_file_is_a_duplicate_even_when_asked_in_parts(memory_deps: Dependencies) -> None:
    [first] = _presign(memory_deps, _ask("d.csv", 12 * _MIB, parts=2))
    assert isinstance(memory_deps.objects, MemoryObjectStore)
    memory_deps.objects.objects[str(first["key"])] = b"d.csv"  # the bytes its sha256 names
    [verifying] = _presign(memory_deps, _ask("d.csv", 12 * _MIB, parts=2))
    assert verifying["status"] == "retry"  # a completed upload is not a duplicate unverified
    assert verify_completed(memory_deps.objects, str(first["key"])) == "stored"
    [second] = _presign(memory_deps, _ask("d.csv", 12 * _MIB, parts=2))
    assert second == {"filename": "d.csv", "key": first["key"], "status": "duplicate"}


def test_urls_past_the_request_cap_answer_retry(memory_deps: Dependencies) -> None:
    # A 5 TiB file's answer holds 1,025 URLs (its parts and the completion): a second one does
    # not fit under the request's cap, a single PUT after it still does.
    big = [_ask(f"f{i}.csv", limits.OBJECT_BYTES) for i in range(2)]
    assert limits.PRESIGNED_URLS < 2 * (limits.PARTS_PER_FILE + 1)
    results = _presign(memory_deps, big[0], big[1], _ask("small.csv", 1))
    assert [r["status"] for r in results] == ["multipart", "retry", "upload"]
    assert str(results[1]["error"]).startswith("request_full:")
