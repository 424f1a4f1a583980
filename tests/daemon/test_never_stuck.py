"""Nothing stays in `sending`: an answer the spool could not record is re-checked once it can, and
an answer the contract does not name is a protocol error of its request, never a failure."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from exportsync.clock import FakeClock
from exportsync.config import WatchConfig
from exportsync.delivery import Deliverer
from exportsync.errors import SpoolError, TransientError
from exportsync.intake import Intake
from exportsync.matcher import FileMatcher
from exportsync.pacing import Pacing
from exportsync.quota import DAY
from support.fake_api import Call, FakeApi
from support.flaky_spool import DISK_FULL, FlakySpool
from support.ledger import plan_ledger
from support.settings import api_settings

START = 1_800_000_000.0 - (1_800_000_000.0 % DAY) + 3600  # 01:00 UTC


@dataclass
class Rig:
    root: Path
    spool: FlakySpool
    clock: FakeClock
    api: FakeApi
    deliverer: Deliverer
    intake: Intake

    def drop(self, name: str, data: str) -> None:
        (self.root / name).write_text(data)
        assert self.intake.offer(self.root / name) is not None

    def step_until_quiet(self, max_steps: int = 50) -> None:
        for _ in range(max_steps):
            outcome = self.deliverer.step()
            if outcome.wait is None:
                return
            self.clock.advance(outcome.wait)
        raise AssertionError("delivery did not settle")

    def step_to_request(self, max_steps: int = 20) -> None:
        """Step (over the ledger's waits) until a request has gone out; SpoolError propagates."""
        before = len(self.api.calls)
        for _ in range(max_steps):
            outcome = self.deliverer.step()
            if len(self.api.calls) > before:
                return
            self.clock.advance(outcome.wait or 1.0)
        raise AssertionError("no request went out")

    def counts(self) -> dict[str, int]:
        return {str(k): v for k, v in self.spool.counts().items()}


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    root = tmp_path / "export"
    root.mkdir()
    spool = FlakySpool.open(tmp_path / "state")
    clock = FakeClock(START)
    api = FakeApi()
    deliverer = Deliverer(
        spool=spool,
        ledger=plan_ledger(spool, clock, daily_requests=100),
        api=api,
        clock=clock,
        watch=WatchConfig(root),
        settings=api_settings(),
        pacing=Pacing(quiet_seconds=0.0, prompt_requests=1000),
    )
    intake = Intake(spool, root=root, matcher=FileMatcher(), clock=clock)
    yield Rig(root, spool, clock, api, deliverer, intake)
    spool.close()


def _fill_disk_then(rig: Rig, answer: TransientError | None) -> Any:
    """An API call during which the state disk fills; it answers normally or raises `answer`."""

    def during(call: Call) -> list[dict[str, Any]]:
        rig.spool.full = True
        if answer is not None:
            raise answer
        return rig.api.default_results(call.request)

    return during


def _drop_three(rig: Rig) -> None:
    rig.drop("a.csv", "a\n1\n")
    rig.drop("b.csv", "b\n2\n")
    rig.drop("s.session.json", json.dumps({"timestamp": "2026-11-25T10:00:00Z"}))


@pytest.mark.parametrize("answer", [None, TransientError("HTTP 503", status=503)])
def test_items_whose_answer_could_not_be_recorded_are_sent_again_once_room_returns(
    rig: Rig, answer: TransientError | None
) -> None:
    _drop_three(rig)
    rig.api.script = [_fill_disk_then(rig, answer)]
    with pytest.raises(SpoolError, match=DISK_FULL):
        rig.step_to_request()
    assert rig.counts()["sending"] == 3  # the answer could not be recorded

    rig.clock.advance(5.0)
    with pytest.raises(SpoolError):
        rig.deliverer.step()  # still full: nothing can be recorded, nothing is sent
    assert len(rig.api.calls) == 1

    rig.spool.full = False
    with capture_logs() as logs:
        rig.step_until_quiet()
    assert rig.counts() == {"pending": 0, "sending": 0, "delivered": 3, "failed": 0}
    assert len(rig.api.calls) == 2  # sent once more, without a restart
    released = [e for e in logs if e["event"] == "sending_released"]
    assert [e["items"] for e in released] == [3]
    if answer is None:
        # The first request had stored them: the server recognises every one.
        assert {e["status"] for e in rig.api.default_results(rig.api.calls[1].request)} == {
            "duplicate"
        }


def test_nothing_is_in_sending_after_the_first_step_with_room(rig: Rig) -> None:
    _drop_three(rig)
    rig.api.script = [_fill_disk_then(rig, None)]
    with pytest.raises(SpoolError):
        rig.step_to_request()
    rig.spool.full = False
    rig.api.script = [TransientError("HTTP 502", status=502)]
    rig.step_to_request()
    assert rig.counts()["sending"] == 0
    assert rig.counts()["pending"] == 3


@pytest.mark.parametrize("kind", ["file", "session"])
def test_an_unknown_status_is_a_protocol_error_retried_later_never_failed(
    rig: Rig, kind: str
) -> None:
    _drop_three(rig)

    def other_version(call: Call) -> list[dict[str, Any]]:
        results = rig.api.default_results(call.request)
        for r in results:
            if r["kind"] == kind:
                r["status"] = "ok"
        return results

    rig.api.script = [other_version, other_version]
    with capture_logs() as logs:
        rig.step_to_request()
    assert rig.counts()["failed"] == 0
    assert rig.counts()["delivered"] == 0  # the whole request is in doubt, not only its "ok"s
    assert rig.counts()["pending"] == 3
    errors = [e for e in logs if e["event"] == "api_protocol_error"]
    assert len(errors) == 1
    assert "ok" in errors[0]["error"]
    assert not [e for e in logs if e["event"] == "item_failed"]

    rig.step_until_quiet()  # a second unknown answer, then the API is fixed
    assert rig.counts() == {"pending": 0, "sending": 0, "delivered": 3, "failed": 0}
    assert len(rig.api.calls) == 3


def test_a_presign_answer_with_an_unknown_status_is_retried(rig: Rig, tmp_path: Path) -> None:
    rig.drop("big.csv", "x" * 5_000_000)  # over the inline limit: a presign ask

    def other_version(call: Call) -> list[dict[str, Any]]:
        return [{"kind": "presign", "filename": "big.csv", "status": "accepted"}]

    rig.api.script = [other_version]
    with capture_logs() as logs:
        rig.step_to_request()
    assert rig.counts()["pending"] == 1
    assert [e["event"] for e in logs if e["event"] == "api_protocol_error"] == [
        "api_protocol_error"
    ]
    rig.step_until_quiet()
    assert rig.counts()["delivered"] == 1


@pytest.mark.parametrize("how", ["deleted", "replaced", "wal deleted"])
def test_a_spool_file_lost_under_the_open_database_is_restored_from_it(
    tmp_path: Path, how: str
) -> None:
    spool = FlakySpool.open(tmp_path / "state")
    try:
        spool.record_rejected(Path("/x/a.csv"), "csv", "for the test", now=START)
        assert spool.lost() is None
        if how == "deleted":
            spool.path.unlink()
        elif how == "replaced":
            garbage = spool.path.with_name("garbage")
            garbage.write_bytes(b"not a database" * 100)
            garbage.rename(spool.path)
        else:
            spool.path.with_name(spool.path.name + "-wal").unlink()
        assert spool.lost() == how
        restored, aside = spool.rebuild(now=START)
        assert restored
        assert (aside is None) == (how == "deleted")  # what stood there is kept aside
        assert spool.lost() is None
        assert [i.path.name for i in spool.items()] == ["a.csv"]
    finally:
        spool.close()
    with FlakySpool.open(tmp_path / "state") as again:  # what `status` reads from the path
        assert [i.path.name for i in again.items()] == ["a.csv"]
