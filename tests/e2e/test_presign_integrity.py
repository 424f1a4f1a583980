"""The delivery step against the devstack's strict S3 front: a presigned body that is not the
spooled one is refused by "S3", and the item is retried, never marked delivered.

The step runs in-process (fake clock for its waits) with the real HTTP client; the devstack runs
as a subprocess without a usage plan, so nothing here waits on the 1 request/s bucket.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO

import pytest
from structlog.testing import capture_logs

from exportsync.client import HttpApi
from exportsync.clock import FakeClock
from exportsync.config import WatchConfig
from exportsync.delivery import Deliverer
from exportsync.intake import Intake
from exportsync.matcher import FileMatcher
from exportsync.spool import Spool
from support.devstack import DevstackInfo, s3_objects, usage
from support.ledger import plan_ledger
from support.settings import api_settings

Tamper = Callable[[bytes], bytes]


class TamperingApi(HttpApi):
    """The real client, except that the next presigned PUT sends `tamper(bytes)` instead."""

    tamper: Tamper | None = None

    def put_presigned(
        self, url: str, headers: Mapping[str, str], body: IO[bytes] | Iterable[bytes]
    ) -> None:
        if self.tamper is None:
            super().put_presigned(url, headers, body)
            return
        data = b"".join(iter(body))  # the daemon's stream, read to its end (so it verifies)
        tamper, self.tamper = self.tamper, None
        super().put_presigned(url, headers, [tamper(data)])


def _flip(data: bytes) -> bytes:
    return data[:1000] + bytes([data[1000] ^ 0x01]) + data[1001:]


@pytest.mark.parametrize(
    ("tamper", "refusal"),
    [
        (_flip, "BadDigest"),  # torn: one bit flipped in flight
        (lambda data: data[:-1], "SignatureDoesNotMatch"),  # truncated (the signed length differs)
        (lambda data: data[::-1], "BadDigest"),  # swapped: other bytes, same length
    ],
    ids=["torn", "truncated", "swapped"],
)
def test_a_refused_presigned_body_is_retried_and_never_delivered(
    open_devstack: DevstackInfo, tmp_path: Path, tamper: Tamper, refusal: str
) -> None:
    info = open_devstack
    root = tmp_path / "export"
    root.mkdir()
    clock = FakeClock(1_800_000_000.0)
    api = TamperingApi(info.api_url, info.api_key, timeout=30)
    with Spool.open(tmp_path / "state") as spool:
        deliverer = Deliverer(
            spool=spool,
            ledger=plan_ledger(spool, clock, daily_requests=0),
            api=api,
            clock=clock,
            watch=WatchConfig(root),
            settings=api_settings(None, inline_max_bytes=1000),
        )
        path = root / f"{tmp_path.name[-20:]}.csv"
        data = b"".join(b"2026-02-10,%d\n" % i for i in range(2000))  # unique per test
        path.write_bytes(data)
        assert Intake(spool, root=root, matcher=FileMatcher(), clock=clock).offer(path) is not None
        refused_before = usage(info)["s3"]["refused"].get(refusal, 0)

        api.tamper = tamper
        with capture_logs() as logs:
            for _ in range(10):  # the first steps wait for the ledger's first token
                if deliverer.step().requested:
                    break
                clock.advance(1.0)
        (item,) = spool.items()
        assert item.state == "pending"  # retried: not failed, not delivered
        assert refusal in (item.last_error or "")
        assert "item_delivered" not in [e["event"] for e in logs]
        assert usage(info)["s3"]["refused"].get(refusal, 0) == refused_before + 1
        assert not [k for k in s3_objects(info) if k.endswith(path.name)]

        # The retry, with the bytes as they are on disk, lands them.
        for _ in range(20):
            outcome = deliverer.step()
            if outcome.wait is None:
                break
            clock.advance(outcome.wait)
        (item,) = spool.items()
        assert item.state == "delivered"
        assert item.remote_key is not None
        assert s3_objects(info)[item.remote_key] == data
    api.close()
