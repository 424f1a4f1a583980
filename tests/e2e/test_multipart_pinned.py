"""Content pinned end to end (CONTRACT §3b) through the devstack: its strict S3 front checks the
steps of a multipart upload as S3 does (each part's signed checksum, the completion's part
checksums, composite and size) and runs the verifier on every completed upload, as the bucket's
event does on AWS. A tampered part or completion never leaves wrong bytes under a key that names
a sha256; an upload id resumes only for the user, key, sha256 and size that began it; URLs live
at most 900 s; and the daemon never completes a file rewritten in place with its mtime restored.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from exportsync.client import HttpApi
from exportsync.clock import FakeClock
from exportsync.config import WatchConfig
from exportsync.delivery import Deliverer
from exportsync.intake import Intake
from exportsync.matcher import FileMatcher
from exportsync.spool import Spool
from exportsync_wire.parts import checksum_b64, plan_parts
from support.devstack import DevstackInfo, s3_objects, start_devstack
from support.ledger import plan_ledger
from support.settings import api_settings

pytestmark = pytest.mark.integration

_MIB = 1024 * 1024
_SIZE = 11 * _MIB + 3  # two parts of 5.5 MiB when asked for 2


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevstackInfo]:
    args = ("--rate", "0", "--quota", "0", "--users", "2")
    with start_devstack(tmp_path_factory.mktemp("devstack"), *args) as info:
        yield info


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _data(tag: str, size: int = _SIZE) -> bytes:
    seed = hashlib.sha256(tag.encode() + os.urandom(8)).digest()
    return (seed * (size // len(seed) + 1))[:size]


def _digests(data: bytes, parts: int = 2) -> list[str]:
    plan = plan_parts(len(data), parts)
    return [_sha(data[n * plan.part_size : (n + 1) * plan.part_size]) for n in range(plan.count)]


def _ask(data: bytes, name: str, digests: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    entry = {"filename": name, "sha256": _sha(data), "size": len(data), "parts": 2}
    return {**entry, "part_sha256": digests or _digests(data), **extra}


def _presign(info: DevstackInfo, entry: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    response = requests.post(
        f"{info.api_url}/presign",
        json={"files": [entry]},
        headers={"x-api-key": key or info.api_key},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["results"][0]
    return result


def _put_parts(answer: dict[str, Any], body: bytes) -> list[str]:
    etags, offset = [], 0
    for part in answer["parts"]:
        length = int(part["headers"]["Content-Length"])
        put = requests.put(
            part["url"], data=body[offset : offset + length], headers=part["headers"], timeout=60
        )
        assert put.status_code == 200, put.text
        etags.append(put.headers["ETag"])
        offset += length
    return etags


def _xml(etags: list[str], digests: list[str], numbers: list[int] | None = None) -> bytes:
    chosen = numbers or list(range(1, len(etags) + 1))
    parts = "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{etags[n - 1]}</ETag>"
        f"<ChecksumSHA256>{checksum_b64(digests[n - 1])}</ChecksumSHA256></Part>"
        for n in chosen
    )
    return f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()


def _complete(answer: dict[str, Any], body: bytes, **headers: str) -> requests.Response:
    signed = {**answer["complete"]["headers"], **headers}
    return requests.post(answer["complete"]["url"], data=body, headers=signed, timeout=60)


def _code(response: requests.Response) -> str:
    return response.text.split("<Code>", 1)[-1].split("</Code>", 1)[0]


def _under(info: DevstackInfo, key: str) -> bytes | None:
    return s3_objects(info).get(key)


# -- a URL holder tampers ---------------------------------------------------------------------


def test_a_tampered_part_is_refused_by_s3(stack: DevstackInfo) -> None:
    data = _data("part")
    answer = _presign(stack, _ask(data, "part.csv"))
    assert answer["status"] == "multipart"
    first = answer["parts"][0]
    length = int(first["headers"]["Content-Length"])
    other = bytes(b ^ 0xFF for b in data[:length])
    put = requests.put(first["url"], data=other, headers=first["headers"], timeout=60)
    assert (put.status_code, _code(put)) == (400, "BadDigest")
    # Without the signed checksum header the signature does not match.
    bare = {"Content-Length": first["headers"]["Content-Length"]}
    put = requests.put(first["url"], data=other, headers=bare, timeout=60)
    assert (put.status_code, _code(put)) == (403, "SignatureDoesNotMatch")


@pytest.mark.parametrize("tamper", ["drop_a_part", "other_composite", "no_part_checksums"])
def test_a_tampered_completion_is_refused_and_leaves_nothing(
    stack: DevstackInfo, tamper: str
) -> None:
    data = _data(tamper)
    answer = _presign(stack, _ask(data, f"{tamper}.csv"))
    digests = _digests(data)
    etags = _put_parts(answer, data)
    if tamper == "drop_a_part":
        done = _complete(answer, _xml(etags, digests, [1]))
        assert (done.status_code, _code(done)) == (400, "BadDigest")
    elif tamper == "other_composite":
        done = _complete(answer, _xml(etags, digests), **{"x-amz-checksum-sha256": "A" * 44})
        assert (done.status_code, _code(done)) == (403, "SignatureDoesNotMatch")
    else:
        bare = "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>"
            for n, e in enumerate(etags, 1)
        )
        done = _complete(
            answer, f"<CompleteMultipartUpload>{bare}</CompleteMultipartUpload>".encode()
        )
        assert (done.status_code, _code(done)) == (400, "InvalidRequest")
    assert _under(stack, answer["key"]) is None
    # The genuine completion still lands the genuine bytes.
    assert _complete(answer, _xml(etags, digests)).status_code == 200
    assert _under(stack, answer["key"]) == data


# -- a key holder lies ------------------------------------------------------------------------


def test_parts_that_are_not_the_keys_sha256_are_deleted_and_the_upload_rejected(
    stack: DevstackInfo,
) -> None:
    genuine, other = _data("genuine"), _data("other")
    # The client names the genuine file's sha256 but the digests of other bytes, and sends them.
    answer = _presign(stack, _ask(genuine, "lie.csv", _digests(other)))
    assert answer["status"] == "multipart"
    etags = _put_parts(answer, other)
    assert _complete(answer, _xml(etags, _digests(other))).status_code == 200  # S3 took it
    assert _under(stack, answer["key"]) is None  # the verifier deleted it at once
    resumed = _presign(
        stack, _ask(genuine, "lie.csv", _digests(other), upload_id=answer["upload_id"])
    )
    assert resumed["status"] == "rejected"
    assert resumed["error"].startswith("content_mismatch:")
    # The genuine file is never answered "duplicate": it gets an upload of its own, and lands.
    fresh = _presign(stack, _ask(genuine, "lie.csv"))
    assert fresh["status"] == "multipart"
    assert _complete(fresh, _xml(_put_parts(fresh, genuine), _digests(genuine))).status_code == 200
    assert _under(stack, fresh["key"]) == genuine
    assert _presign(stack, _ask(genuine, "lie.csv"))["status"] == "duplicate"


def test_another_users_upload_id_is_refused(stack: DevstackInfo) -> None:
    alice, bob = stack.users[0], stack.users[1]
    data = _data("shared")
    begun = _presign(stack, _ask(data, "shared.csv"), key=bob["api_key"])
    assert begun["key"].startswith(f"uploads/{bob['user_id']}/")
    taken = _presign(
        stack, _ask(data, "shared.csv", upload_id=begun["upload_id"]), alice["api_key"]
    )
    assert taken["status"] == "rejected"
    assert taken["error"].startswith("unknown_upload:")
    assert "parts" not in taken


def test_a_resume_with_another_size_is_refused(stack: DevstackInfo) -> None:
    data = _data("size")
    begun = _presign(stack, _ask(data, "size.csv"))
    longer = data + b"more"
    entry = _ask(longer, "size.csv", _digests(longer), upload_id=begun["upload_id"])
    entry["sha256"] = _sha(data)  # the same key: only the size (and so the parts) differ
    refused = _presign(stack, entry)
    assert refused["status"] == "rejected"
    assert refused["error"].startswith("upload_mismatch:")


def test_presigned_urls_live_at_most_900_seconds(stack: DevstackInfo) -> None:
    data = _data("expiry")
    answer = _presign(stack, _ask(data, "expiry.csv"))
    urls = [p["url"] for p in answer["parts"]] + [answer["complete"]["url"]]
    assert all(int(parse_qs(urlsplit(u).query)["X-Amz-Expires"][0]) <= 900 for u in urls)
    expires = datetime.fromisoformat(answer["expires_at"].replace("Z", "+00:00"))
    assert (expires - datetime.now(UTC)).total_seconds() <= 900


# -- the daemon --------------------------------------------------------------------------------


class RewritingApi(HttpApi):
    """The real client; after the first part is sent, a writer rewrites later bytes of the file
    in place and puts its modification time back."""

    path: Path | None = None

    def put_presigned(
        self, url: str, headers: Mapping[str, str], body: IO[bytes] | Iterable[bytes]
    ) -> str | None:
        etag = super().put_presigned(url, headers, body)
        if self.path is not None and "partNumber=1" in url:
            path, self.path = self.path, None
            before = path.stat()
            with path.open("r+b") as f:
                f.seek(before.st_size - 100)
                f.write(b"rewritten in place")
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        return etag


def test_the_daemon_never_completes_a_file_rewritten_in_place_with_its_mtime_restored(
    stack: DevstackInfo, tmp_path: Path
) -> None:
    root = tmp_path / "export"
    root.mkdir()
    clock = FakeClock(datetime.now(UTC).timestamp())
    api = RewritingApi(stack.api_url, stack.api_key, timeout=60)
    path = root / "rewritten.csv"
    data = _data("daemon", 33 * _MIB)  # three parts of the daemon's 16 MiB
    path.write_bytes(data)
    with Spool.open(tmp_path / "state") as spool:
        deliverer = Deliverer(
            spool=spool,
            ledger=plan_ledger(spool, clock, daily_requests=0),
            api=api,
            clock=clock,
            watch=WatchConfig(root),
            settings=api_settings(None, inline_max_bytes=1000, multipart_threshold_bytes=8 * _MIB),
        )
        assert Intake(spool, root=root, matcher=FileMatcher(), clock=clock).offer(path) is not None
        api.path = path
        for _ in range(40):
            outcome = deliverer.step()
            if outcome.wait is None:
                break
            clock.advance(max(outcome.wait, 1.0))
        (item,) = spool.items()
        now = path.read_bytes()
        assert item.state == "delivered"
        assert item.content_sha256 == _sha(now)
    objects = s3_objects(stack)
    stored = {k: v for k, v in objects.items() if k.startswith("uploads/") and "rewritten" in k}
    # Only the file as it now is, under its own sha256; nothing under the first one.
    assert stored == {item.remote_key: now}
    assert not [k for k in stored if _sha(data) in k]
    api.close()
