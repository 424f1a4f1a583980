"""The delivery step, driven call by call with a fake clock and a scripted API."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import gzip
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from structlog.testing import capture_logs

from exportsync import sender
from exportsync.client import BatchRequest
from exportsync.clock import FakeClock
from exportsync.config import ApiConfig, WatchConfig
from exportsync.delivery import (
    FULL_WAITS_FOR_INTAKE_SECONDS,
    INTAKE_RECHECK_SECONDS,
    LONGEST_DELAY,
    Deliverer,
)
from exportsync.errors import (
    Forbidden,
    PermanentError,
    QuotaExhausted,
    Redirected,
    RequestTooLarge,
    Throttled,
    TransientError,
    Unreachable,
)
from exportsync.fs import moves
from exportsync.intake import Intake
from exportsync.matcher import FileMatcher
from exportsync.outcomes import retry_delay
from exportsync.pacing import MAX_QUIET_SECONDS, Pacing
from exportsync.quota import DAY, QuotaLedger
from exportsync.sessions import parse_session_file
from exportsync.spool import Spool
from exportsync_wire import limits
from support.fake_api import Call, FakeApi
from support.ledger import plan_ledger
from support.settings import api_settings

START = 1_800_000_000.0 - (1_800_000_000.0 % DAY) + 3600  # 01:00 UTC


@dataclass
class Rig:
    root: Path
    spool: Spool
    clock: FakeClock
    api: FakeApi
    ledger: QuotaLedger
    deliverer: Deliverer
    intake: Intake

    def drop(self, name: str, data: bytes | str) -> Path:
        path = self.root / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        assert self.intake.offer(path) is not None
        return path

    def run(self, max_steps: int = 50) -> int:
        """Step until nothing is due, moving the fake clock over every wait; requests made."""
        made = 0
        for _ in range(max_steps):
            outcome = self.deliverer.step()
            made += outcome.requested
            if outcome.wait is None:
                return made
            self.clock.advance(outcome.wait)
        raise AssertionError("delivery did not settle")

    def states(self) -> dict[str, str]:
        return {i.path.name: i.state for i in self.spool.items()}


def _rig(tmp_path: Path, **options: object) -> Rig:
    root = tmp_path / "export"
    root.mkdir()
    spool = Spool.open(tmp_path / "state")
    clock = FakeClock(START)
    api = FakeApi()
    daily = int(options.pop("daily", 10))  # type: ignore[call-overload]
    ledger = plan_ledger(spool, clock, daily_requests=daily)
    # Unless a test is about pacing: every request goes as soon as the ledger allows.
    options.setdefault("pacing", Pacing(quiet_seconds=0.0, prompt_requests=1000))
    deliverer = Deliverer(
        spool=spool,
        ledger=ledger,
        api=api,
        clock=clock,
        **_configs(root, options),  # type: ignore[arg-type]
    )
    intake = Intake(spool, root=root, matcher=FileMatcher(), clock=clock)
    return Rig(root, spool, clock, api, ledger, deliverer, intake)


def _rig_on(old: Rig, **options: object) -> Rig:
    """A second deliverer on the same folder, spool and API: the daemon after a restart."""
    options.setdefault("pacing", Pacing(quiet_seconds=0.0, prompt_requests=1000))
    ledger = QuotaLedger(
        old.spool,
        requests_per_second=1.0,
        burst=1,
        daily_requests=10,
        reset_utc=dt.time(0, 0),
        margin_seconds=0.25,
        clock=old.clock,
    )
    deliverer = Deliverer(
        spool=old.spool,
        ledger=ledger,
        api=old.api,
        clock=old.clock,
        **_configs(old.root, options),  # type: ignore[arg-type]
    )
    return Rig(old.root, old.spool, old.clock, old.api, ledger, deliverer, old.intake)


def _configs(root: Path, options: dict[str, object]) -> dict[str, object]:
    """The Deliverer's keyword arguments: `[api]` keys (inline_max_bytes...) go into its
    ApiConfig, `after_upload` into its WatchConfig, the rest (pacing...) as they are."""
    api_keys = {f.name for f in dataclasses.fields(ApiConfig)}
    api = {k: options.pop(k) for k in list(options) if k in api_keys}
    watch = {k: options.pop(k) for k in ("after_upload",) if k in options}
    return {
        "watch": WatchConfig(root, **watch),  # type: ignore[arg-type]
        "settings": api_settings(**api),  # type: ignore[arg-type]
        **options,
    }


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = _rig(tmp_path)
    yield r
    r.spool.close()


def _session(ts: str, **fields: object) -> str:
    return json.dumps({"timestamp": ts, **fields})


def test_files_and_sessions_travel_in_one_request(rig: Rig) -> None:
    for i in range(30):
        rig.drop(f"r{i}.csv", f"a,b\n{i},x\n")
        rig.drop(f"s{i}.session.json", _session(f"2026-11-25T10:00:{i:02d}Z", n=i))
    assert rig.run() == 1
    assert rig.spool.counts()["delivered"] == 60
    (call,) = rig.api.calls
    assert {f.filename for f in call.files} == {f"r{i}.csv" for i in range(30)}
    assert all(f.data == (rig.root / f.filename).read_bytes() for f in call.files)
    assert all(f.encoding is None for f in call.files)  # small files go as they are
    assert len(call.sessions) == 30


def test_session_numbers_are_sent_exactly_and_user_id_is_filled_in(rig: Rig) -> None:
    rig.drop("a.session.json", '{"timestamp": "2026-11-25T10:00:00Z", "score": 0.1, "n": 1e125}')
    rig.run()
    (body,) = rig.api.calls[0].sessions
    assert body == b'{"timestamp":"2026-11-25T10:00:00Z","score":0.1,"n":1E+125,"user_id":"alice"}'


def test_a_broken_session_fails_alone_without_spending_a_request(rig: Rig) -> None:
    rig.drop("nan.session.json", '{"timestamp": "2026-11-25T10:00:00Z", "x": NaN}')
    rig.drop("broken.session.json", '{"timestamp": ')
    rig.drop("good.session.json", _session("2026-11-25T10:00:00Z"))
    with capture_logs() as logs:
        assert rig.run() == 1
    assert rig.states() == {
        "nan.session.json": "failed",
        "broken.session.json": "failed",
        "good.session.json": "delivered",
    }
    reasons = {i.path.name: i.last_error for i in rig.spool.items("failed")}
    assert "NaN" in (reasons["nan.session.json"] or "")
    assert "invalid JSON" in (reasons["broken.session.json"] or "")
    assert len(rig.api.calls[0].sessions) == 1
    assert sum(e["event"] == "item_failed" for e in logs) == 2


def test_a_list_with_one_invalid_session_delivers_the_rest_and_says_which(rig: Rig) -> None:
    sessions = [
        {"timestamp": "2026-11-25T10:00:00Z"},
        {"timestamp": "yesterday"},
        {"timestamp": "2026-11-25T11:00:00Z"},
    ]
    rig.drop("day.session.json", json.dumps(sessions))
    rig.run()
    assert len(rig.api.calls[0].sessions) == 2
    (item,) = rig.spool.items()
    assert item.state == "failed"
    assert item.last_error is not None
    assert "session 1" in item.last_error
    assert "ISO-8601" in item.last_error


def test_a_file_of_only_invalid_sessions_fails_without_spending_a_request(rig: Rig) -> None:
    """Nothing in the batch is valid: the local verdicts are recorded, no request goes."""
    rig.drop("bad.session.json", json.dumps([{"timestamp": "yesterday"}, {"n": 1}]))
    assert rig.run() == 0
    (item,) = rig.spool.items()
    assert item.state == "failed"
    assert "session 0" in (item.last_error or "")
    assert "session 1" in (item.last_error or "")
    assert rig.api.calls == []


def test_server_rejection_of_one_session_fails_that_file_only(rig: Rig) -> None:
    rig.drop("a.session.json", _session("2026-11-25T10:00:00Z"))
    rig.drop("b.session.json", _session("2026-11-25T10:00:01Z"))
    rig.api.script = [
        lambda call: [
            {"kind": "session", "status": "stored"},
            {"kind": "session", "status": "rejected", "error": "item too large"},
        ]
    ]
    rig.run()
    assert rig.states() == {"a.session.json": "delivered", "b.session.json": "failed"}
    failed = rig.spool.items("failed")[0]
    assert failed.last_error is not None
    assert "item too large" in failed.last_error


def test_a_file_of_2500_sessions_goes_in_three_requests(rig: Rig) -> None:
    sessions = [
        {"timestamp": f"2026-11-25T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z"}
        for i in range(2500)
    ]
    rig.drop("big.session.json", json.dumps(sessions))
    assert rig.run() == 3
    assert [len(c.sessions) for c in rig.api.calls] == [1000, 1000, 500]
    assert rig.states() == {"big.session.json": "delivered"}


def test_throttle_backs_off_and_retries_without_failing_anything(rig: Rig) -> None:
    rig.drop("a.csv", "1\n")
    rig.api.script = [Throttled("Too Many Requests", status=429)]
    with capture_logs() as logs:
        assert rig.run() == 2
    assert rig.states() == {"a.csv": "delivered"}
    assert any(e["event"] == "quota_throttled" for e in logs)
    item = rig.spool.items()[0]
    assert item.attempts == 0  # a throttle is not the item's fault


def test_limit_exceeded_parks_everything_until_the_reset(rig: Rig) -> None:
    rig.drop("a.csv", "1\n")
    rig.api.script = [QuotaExhausted("Limit Exceeded", status=429)]
    with capture_logs() as logs:
        rig.clock.advance(rig.ledger.wait_time())
        assert rig.deliverer.step().requested
        # The clock has not reached the reset: nothing may be sent, however often we ask.
        for _ in range(5):
            outcome = rig.deliverer.step()
            assert not outcome.requested
            assert outcome.wait is not None
            assert outcome.wait > 3600
    assert any(e["event"] == "quota_exhausted" for e in logs)
    assert rig.states() == {"a.csv": "pending"}
    rig.run()
    assert rig.clock.time() > START - 3600 + DAY  # delivered on the next day
    assert rig.states() == {"a.csv": "delivered"}


def test_server_errors_retry_with_growing_backoff_and_count_each_request(rig: Rig) -> None:
    rig.drop("a.csv", "1\n")
    rig.api.script = [TransientError("HTTP 503", status=503)] * 3
    assert rig.run() == 4
    assert rig.states() == {"a.csv": "delivered"}
    assert rig.ledger.snapshot().used == 4


def test_backoff_grows_and_is_capped() -> None:
    delays = [retry_delay(n) for n in range(1, 20)]
    assert 2 <= delays[0] <= 4
    assert delays[3] >= 16
    assert max(delays) <= 1800 + 2


def test_the_day_quota_holds_even_while_retrying(tmp_path: Path) -> None:
    rig = _rig(tmp_path, daily=3)
    rig.drop("a.csv", "1\n")
    rig.api.script = [TransientError("HTTP 502", status=502)] * 10
    for _ in range(20):
        outcome = rig.deliverer.step()
        if outcome.wait and rig.clock.time() + outcome.wait > START - 3600 + DAY:
            break
        rig.clock.advance(outcome.wait or 0)
    assert len(rig.api.calls) == 3
    assert rig.states() == {"a.csv": "pending"}
    rig.spool.close()


def test_a_refused_file_fails_with_the_servers_reason_and_does_not_block_others(rig: Rig) -> None:
    rig.drop("a.csv", "1\n")
    rig.api.script = [PermanentError("bad_request: manifest mismatch", status=400)]
    rig.run()
    assert rig.states() == {"a.csv": "failed"}
    assert "manifest mismatch" in (rig.spool.items()[0].last_error or "")
    rig.drop("b.csv", "2\n")
    rig.run()
    assert rig.states()["b.csv"] == "delivered"


def test_forbidden_keeps_items_pending(rig: Rig) -> None:
    rig.drop("a.csv", "1\n")
    rig.api.script = [Forbidden("Forbidden", status=403)]
    rig.deliverer.step()
    rig.clock.advance(rig.ledger.wait_time())
    rig.deliverer.step()
    assert rig.states() == {"a.csv": "pending"}
    rig.run()
    assert rig.states() == {"a.csv": "delivered"}


def test_a_redirect_holds_items_pending_and_says_so(rig: Rig) -> None:
    """A redirect is api.url's fault, not the items': they wait, nothing fails."""
    rig.drop("a.csv", "1\n")
    rig.api.script = [Redirected("the API answered 301", status=301)]
    rig.clock.advance(rig.ledger.wait_time())
    with capture_logs() as logs:
        assert rig.deliverer.step().requested
    assert rig.states() == {"a.csv": "pending"}
    assert "api_redirected" in [e["event"] for e in logs]
    rig.run()
    assert rig.states() == {"a.csv": "delivered"}


def test_a_413_halves_the_batch_and_a_lone_item_fails(rig: Rig) -> None:
    for i in range(4):
        rig.drop(f"r{i}.csv", f"{i}\n")
    rig.api.script = [RequestTooLarge("Request Too Long", status=413)]
    rig.run()
    assert [len(c.files) for c in rig.api.calls] == [4, 2, 2]
    assert rig.spool.counts()["delivered"] == 4


def test_a_file_deleted_before_delivery_fails_with_a_reason(rig: Rig) -> None:
    path = rig.drop("gone.csv", "1\n")
    rig.drop("kept.csv", "2\n")
    path.unlink()
    rig.run()
    assert rig.states() == {"gone.csv": "failed", "kept.csv": "delivered"}
    failed = rig.spool.items("failed")[0]
    assert "deleted" in (failed.last_error or "")


def test_a_file_rewritten_after_spooling_is_never_sent_torn(rig: Rig) -> None:
    path = rig.drop("a.csv", "old,content\n")
    path.write_bytes(b"new,content,longer\n")
    rig.run()
    sent = [f.data for c in rig.api.calls for f in c.files]
    assert sent == [b"new,content,longer\n"]
    (item,) = rig.spool.items()
    assert item.sha256 == hashlib.sha256(b"new,content,longer\n").hexdigest()
    assert item.state == "delivered"


def test_large_files_go_through_presigned_puts(tmp_path: Path) -> None:
    rig = _rig(tmp_path, inline_max_bytes=1000)
    big = b"x" * 5000
    rig.drop("big.csv", big)
    rig.drop("small.csv", "1\n")
    assert rig.run() == 1
    (call,) = rig.api.calls
    assert [f.filename for f in call.files] == ["small.csv"]
    assert [(p.filename, p.parts) for p in call.presign] == [("big.csv", None)]
    ((_url, headers, data),) = rig.api.puts
    assert data == big
    assert headers == {
        "x-amz-checksum-sha256": base64.b64encode(hashlib.sha256(big).digest()).decode()
    }
    assert rig.spool.counts()["delivered"] == 2
    rig.spool.close()


def test_a_file_changed_during_its_presigned_put_is_not_marked_delivered(tmp_path: Path) -> None:
    """The daemon checks what it streamed against the spooled hash (the fake, like moto, checks
    nothing): a file rewritten in place mid-PUT is requeued as its new version, never delivered
    as the old one, and the PUT that finally counts carried exactly the delivered hash."""
    rig = _rig(tmp_path, inline_max_bytes=10)
    old, new = b"a" * 4000, b"b" * 4000
    path = rig.drop("big.csv", old)

    rewritten: list[bool] = []

    def rewrite() -> None:
        with path.open("r+b") as f:  # same inode, same size: only the content differs
            f.write(new)
        rewritten.append(True)

    rig.api.during_put = rewrite
    with capture_logs() as logs:
        for _ in range(10):  # the first step waits for the quota's first token
            if rewritten:
                break
            rig.clock.advance(rig.deliverer.step().wait or 0.0)
    (item,) = rig.spool.items()
    assert item.state == "pending"
    assert item.sha256 == hashlib.sha256(new).hexdigest()
    assert "item_delivered" not in [e["event"] for e in logs]
    torn = rig.api.puts[0][2]
    assert torn == old[:2000] + new[2000:]

    rig.run()
    (item,) = rig.spool.items()
    assert item.state == "delivered"
    assert hashlib.sha256(rig.api.puts[-1][2]).hexdigest() == item.sha256
    rig.spool.close()


def test_a_failed_presigned_put_is_retried_with_a_fresh_url(tmp_path: Path) -> None:
    rig = _rig(tmp_path, inline_max_bytes=10)
    rig.drop("big.csv", b"y" * 100)
    rig.api.put_errors = [TransientError("storage answered 503", status=503)]
    assert rig.run() == 2
    assert [len(c.presign) for c in rig.api.calls] == [1, 1]
    assert len(rig.api.puts) == 1
    rig.spool.close()


def test_presign_duplicate_needs_no_put(tmp_path: Path) -> None:
    rig = _rig(tmp_path, inline_max_bytes=10)
    rig.drop("big.csv", b"z" * 100)
    rig.api.script = [
        lambda call: [{"kind": "presign", "status": "duplicate", "key": "uploads/u/k/big.csv"}]
    ]
    rig.run()
    assert rig.api.puts == []
    assert rig.spool.items()[0].remote_key == "uploads/u/k/big.csv"
    rig.spool.close()


@pytest.mark.parametrize("mode", ["move", "delete"])
def test_after_upload_moves_or_deletes_only_delivered_content(tmp_path: Path, mode: str) -> None:
    rig = _rig(tmp_path, after_upload=mode)
    rig.drop("a.csv", "1\n")
    rig.run()
    assert not (rig.root / "a.csv").exists()
    assert (rig.root / "sent" / "a.csv").exists() == (mode == "move")
    rig.spool.close()


def test_an_unexpected_error_does_not_strand_items_in_sending(rig: Rig) -> None:
    rig.drop("a.csv", "1\n")

    def explode(call: object) -> None:
        raise KeyError("bug")

    rig.api.script = [explode]
    rig.run()
    assert rig.states() == {"a.csv": "delivered"}
    assert len(rig.api.calls) == 2


def test_after_a_413_the_next_batch_carries_half(rig: Rig) -> None:
    for i in range(3):
        rig.drop(f"s{i}.session.json", _session(f"2026-11-25T10:00:0{i}Z", blob="x" * 300_000))
    rig.api.script = [RequestTooLarge("Request Too Long", status=413)]
    rig.run()
    assert rig.states() == {f"s{i}.session.json": "delivered" for i in range(3)}
    # Refused with 3, then at most half of that, then (after a success) back to full batches.
    assert [len(c.sessions) for c in rig.api.calls] == [3, 1, 2]


def test_a_lone_item_refused_as_too_large_fails_and_the_queue_moves_on(rig: Rig) -> None:
    rig.drop("a.csv", "1\n")
    rig.drop("b.session.json", _session("2026-11-25T10:00:00Z"))
    rig.api.script = [RequestTooLarge("Request Too Long", status=413)] * 2
    rig.run()
    assert rig.states() == {"a.csv": "failed", "b.session.json": "delivered"}
    assert [c.request.entries for c in rig.api.calls] == [2, 1, 1]


def test_batch_max_files_caps_the_entries_of_a_request(tmp_path: Path) -> None:
    rig = _rig(tmp_path, batch_max_files=2)
    for i in range(3):
        rig.drop(f"s{i}.session.json", _session(f"2026-11-25T10:00:0{i}Z"))
        rig.drop(f"r{i}.csv", f"{i}\n")
    rig.run()
    assert [c.request.entries for c in rig.api.calls] == [2, 2, 2]
    rig.spool.close()


def test_an_unreachable_api_costs_no_quota_and_is_retried_within_a_minute(
    tmp_path: Path,
) -> None:
    rig = _rig(tmp_path, daily=3)
    rig.drop("a.csv", "1\n")
    rig.api.script = [Unreachable("/upload: cannot connect (NewConnectionError)")] * 12
    with capture_logs() as logs:
        made = rig.run(max_steps=100)
    # Twelve attempts found no connection, the thirteenth delivered: one request on the day.
    assert made == 13
    assert rig.states() == {"a.csv": "delivered"}
    assert rig.ledger.snapshot().used == 1
    waits = [e["retry_in_seconds"] for e in logs if e["event"] == "api_unreachable"]
    assert len(waits) == 12
    assert max(waits) <= 60
    assert rig.spool.items()[0].attempts == 0
    rig.spool.close()


def test_files_exported_together_wait_for_each_other(tmp_path: Path) -> None:
    rig = _rig(tmp_path, pacing=Pacing(quiet_seconds=3.0))
    rig.drop("a.csv", "1\n")
    outcome = rig.deliverer.step()
    assert not outcome.requested
    assert outcome.wait == pytest.approx(3.0)
    rig.clock.advance(2.0)
    rig.drop("a.session.json", _session("2026-11-25T10:00:00Z"))  # the same export: joins it
    assert rig.run() == 1
    assert [c.request.entries for c in rig.api.calls] == [2]
    assert rig.clock.time() == pytest.approx(START + 5.0)  # 3 s after the folder went quiet
    rig.spool.close()


def test_without_a_daily_limit_nothing_waits_for_company(tmp_path: Path) -> None:
    rig = _rig(tmp_path, daily=0, pacing=Pacing(quiet_seconds=3.0))
    rig.clock.advance(rig.ledger.wait_time())
    rig.drop("a.csv", "1\n")
    assert rig.deliverer.step().requested
    rig.spool.close()


def test_an_entry_the_api_asks_to_retry_comes_back_later(rig: Rig) -> None:
    rig.drop("a.csv", "1\n")
    rig.drop("b.csv", "2\n")
    rig.drop("c.session.json", _session("2026-11-25T10:00:00Z"))

    def one_retry(call: Call) -> list[dict[str, object]]:
        results = rig.api.default_results(call.request)
        results[0] = {**results[0], "status": "retry", "error": "SlowDown"}
        results[2] = {**results[2], "status": "retry", "error": "ProvisionedThroughput"}
        return results

    rig.api.script = [one_retry]
    rig.clock.advance(rig.ledger.wait_time())
    assert rig.deliverer.step().requested
    states = rig.states()
    assert states == {"a.csv": "pending", "b.csv": "delivered", "c.session.json": "pending"}
    retried = {i.path.name: i for i in rig.spool.items("pending")}
    assert all(i.next_attempt_at > rig.clock.time() for i in retried.values())
    assert "SlowDown" in (retried["a.csv"].last_error or "")
    rig.run()
    assert rig.spool.counts()["delivered"] == 3
    assert sum(c.request.entries for c in rig.api.calls[1:]) == 2  # only the two retried


def test_results_are_matched_by_kind_whatever_their_order(rig: Rig) -> None:
    rig.drop("a.csv", "1\n")
    rig.drop("b.session.json", _session("2026-11-25T10:00:00Z"))
    rig.api.script = [
        lambda call: [
            {"kind": "session", "status": "rejected", "error": "bad user"},
            {"kind": "file", "status": "stored", "key": "k"},
        ]
    ]
    rig.run()
    assert rig.states() == {"a.csv": "delivered", "b.session.json": "failed"}


def test_a_compressible_csv_travels_gzipped_with_its_own_size_and_hash(rig: Rig) -> None:
    data = b"id,name,value\n" + b"".join(
        b"%d,name-%d,%d\n" % (i, i % 7, i * 3) for i in range(2000)
    )
    rig.drop("big.csv", data)
    rig.drop("tiny.csv", "1\n")
    rig.run()
    files_sent = {f.filename: f for f in rig.api.calls[0].files}
    big = files_sent["big.csv"]
    assert big.encoding == "gzip"
    assert gzip.decompress(big.data) == data
    assert (big.size, big.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert len(big.data) < 0.5 * len(data)
    assert files_sent["tiny.csv"].encoding is None


def test_a_backlog_of_1001_files_needs_two_requests(tmp_path: Path) -> None:
    rig = _rig(tmp_path, pacing=Pacing())  # the default policy: a full request goes at once
    for i in range(900):
        rig.drop(f"r{i}.csv", f"id,v\n{i},{i * i}\n")
    for i in range(100):
        rig.drop(f"s{i}.session.json", _session(f"2026-11-25T10:{i // 60:02d}:{i % 60:02d}Z"))
    rig.drop("big.csv", b"z" * 5_000_000)
    made = rig.run(max_steps=10)
    assert made == 2
    assert [c.request.entries for c in rig.api.calls] == [1000, 1]
    assert rig.spool.counts()["delivered"] == 1001
    rig.spool.close()


def test_a_large_file_goes_up_in_parts_and_resumes_after_a_restart(tmp_path: Path) -> None:
    rig = _rig(tmp_path, multipart_threshold_bytes=8 * 1024**2)
    data = os.urandom(40 * 1024**2 + 5)
    rig.drop("huge.csv", data)
    # The third part fails: the first two stay recorded, the item waits for its retry.
    rig.api.put_errors = [None, None, TransientError("storage answered 503", status=503)]
    rig.clock.advance(rig.ledger.wait_time())
    assert rig.deliverer.step().requested
    (call,) = rig.api.calls
    assert [(p.filename, p.parts) for p in call.presign] == [("huge.csv", 3)]
    assert len(rig.api.puts) == 2
    assert rig.states() == {"huge.csv": "pending"}
    # A restart: a fresh deliverer on the same spool sends only the missing part, no request.
    rig.spool.recover(rig.clock.time())
    fresh = _rig_on(rig, multipart_threshold_bytes=8 * 1024**2)
    made = fresh.run()
    assert made == 0
    assert len(rig.api.calls) == 1
    assert [url.rsplit("/", 1)[1] for url, _h, _d in rig.api.puts] == ["1", "2", "3"]
    assert b"".join(d for _u, _h, d in rig.api.puts) == data
    ((url, xml),) = rig.api.completions
    assert url.endswith("/complete/" + hashlib.sha256(data).hexdigest())
    assert xml.count(b"<PartNumber>") == 3
    assert rig.states() == {"huge.csv": "delivered"}
    rig.spool.close()


def _rewrite_in_place(path: Path, offset: int, data: bytes) -> None:
    """Other bytes at `offset`, same size, the modification time put back (size and mtime
    alone cannot tell)."""
    before = path.stat()
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_multipart_asks_carry_part_digests_and_the_completion_their_checksums(
    tmp_path: Path,
) -> None:
    rig = _rig(tmp_path, multipart_threshold_bytes=8 * 1024**2)
    data = os.urandom(40 * 1024**2 + 5)
    rig.drop("huge.csv", data)
    rig.run()
    ((ask,),) = [c.presign for c in rig.api.calls]
    size = -(-len(data) // 3)
    assert ask.part_sha256 == tuple(
        hashlib.sha256(data[n * size : (n + 1) * size]).hexdigest() for n in range(3)
    )
    ((_url, xml),) = rig.api.completions
    assert xml.count(b"<ChecksumSHA256>") == 3
    assert rig.api.completion_headers == [{"x-amz-mp-object-size": str(len(data))}]
    assert rig.states() == {"huge.csv": "delivered"}
    rig.spool.close()


def test_a_part_rewritten_in_place_with_its_mtime_restored_is_never_completed(
    tmp_path: Path,
) -> None:
    """The storage here takes any bytes: the daemon's own hashing keeps the upload open."""
    rig = _rig(tmp_path, multipart_threshold_bytes=8 * 1024**2)
    data = os.urandom(40 * 1024**2 + 5)
    path = rig.drop("huge.csv", data)
    # While part 1 goes, the writer changes part 3's bytes and puts the mtime back.
    rig.api.during_put = lambda: _rewrite_in_place(path, 30 * 1024**2, b"changed")
    with capture_logs() as logs:
        rig.clock.advance(rig.ledger.wait_time())
        assert rig.deliverer.step().requested
    assert rig.api.completions == []
    assert "upload_completed" not in [e["event"] for e in logs]
    (item,) = rig.spool.items()
    assert item.state == "pending"  # requeued as the file it now is
    assert item.content_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    rig.run()
    ((url, _xml),) = rig.api.completions
    assert url.endswith(item.content_sha256)  # only the new content completes, under its key
    rig.spool.close()


def test_a_resumed_upload_is_not_completed_when_a_sent_part_changed_on_disk(
    tmp_path: Path,
) -> None:
    rig = _rig(tmp_path, multipart_threshold_bytes=8 * 1024**2)
    data = os.urandom(40 * 1024**2 + 5)
    path = rig.drop("huge.csv", data)
    rig.api.put_errors = [None, None, TransientError("storage answered 503", status=503)]
    rig.clock.advance(rig.ledger.wait_time())
    assert rig.deliverer.step().requested
    assert len(rig.api.puts) == 2
    _rewrite_in_place(path, 100, b"changed")  # inside part 1, which S3 holds already
    rig.spool.recover(rig.clock.time())
    fresh = _rig_on(rig, multipart_threshold_bytes=8 * 1024**2)
    fresh.clock.advance(60)
    fresh.deliverer.step()
    old_sha = hashlib.sha256(data).hexdigest()
    assert not [u for u, _b in rig.api.completions if u.endswith(old_sha)]
    (item,) = rig.spool.items()
    assert item.content_sha256 != old_sha
    rig.spool.close()


def test_an_after_upload_step_that_fails_costs_no_extra_request(tmp_path: Path) -> None:
    """`sent` is a symlink (never followed): the files stay, and the batch costs one request."""
    rig = _rig(tmp_path, after_upload="move")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (rig.root / "sent").symlink_to(elsewhere)
    for name in ("a.csv", "b.csv", "c.csv"):
        rig.drop(name, f"{name}\n")
    with capture_logs() as logs:
        made = rig.run()
    assert made == 1
    assert rig.states() == {"a.csv": "delivered", "b.csv": "delivered", "c.csv": "delivered"}
    assert all((rig.root / name).exists() for name in ("a.csv", "b.csv", "c.csv"))
    assert list(elsewhere.iterdir()) == []
    events = [entry["event"] for entry in logs]
    assert events.count("after_upload_failed") == 3
    assert "delivery_step_crashed" not in events
    rig.spool.close()


@pytest.mark.parametrize("mode", ["move", "delete"])
def test_a_write_that_slips_in_during_after_upload_goes_back_into_the_folder(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = _rig(tmp_path, after_upload=mode)
    rig.drop("a.csv", "delivered\n")
    mover = moves.move_to_sent if mode == "move" else moves.set_aside

    def move_then_rewrite(root: Path, path: Path, **kwargs: Any) -> Path:
        moved = mover(root, path, **kwargs)
        moved.write_text("rewritten by the app in the same instant\n")
        return moved

    monkeypatch.setattr(moves, "move_to_sent" if mode == "move" else "set_aside", move_then_rewrite)
    with capture_logs() as logs:
        rig.run()
    assert rig.states() == {"a.csv": "delivered"}
    assert (rig.root / "a.csv").read_text() == "rewritten by the app in the same instant\n"
    assert any(e["event"] == "file_changed_after_delivery" for e in logs)
    if mode == "move":
        assert list((rig.root / "sent").iterdir()) == []
    rig.spool.close()


@pytest.mark.parametrize("mode", ["move", "delete"])
def test_a_write_that_slips_in_goes_back_into_its_own_sub_folder(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = _rig(tmp_path, after_upload=mode)
    rig.intake = Intake(
        rig.spool, root=rig.root, matcher=FileMatcher(recursive=True), clock=rig.clock
    )
    (rig.root / "sub").mkdir()
    rig.drop("sub/a.csv", "delivered\n")
    mover = moves.move_to_sent if mode == "move" else moves.set_aside

    def move_then_rewrite(root: Path, path: Path, **kwargs: Any) -> Path:
        moved = mover(root, path, **kwargs)
        moved.write_text("rewritten\n")
        return moved

    monkeypatch.setattr(moves, "move_to_sent" if mode == "move" else "set_aside", move_then_rewrite)
    rig.run()
    assert (rig.root / "sub" / "a.csv").read_text() == "rewritten\n"
    assert not (rig.root / "a.csv").exists()
    rig.spool.close()


def test_delete_leaves_no_private_name_behind(tmp_path: Path) -> None:
    rig = _rig(tmp_path, after_upload="delete")
    rig.drop("a.csv", "1\n")
    rig.run()
    assert list(rig.root.iterdir()) == []
    rig.spool.close()


def test_a_file_deleted_before_delivery_and_exported_again_is_delivered(rig: Rig) -> None:
    path = rig.drop("report.csv", "id,value\n1,2\n")
    stat = path.stat()
    path.unlink()
    rig.run()
    assert rig.states() == {"report.csv": "failed"}
    # The same export again, even with the old modification time (a rename back, a restore).
    path.write_text("id,value\n1,2\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert rig.intake.offer(path) is not None
    rig.run()
    assert rig.states() == {"report.csv": "delivered"}
    assert [f.data for c in rig.api.calls for f in c.files] == [b"id,value\n1,2\n"]


def test_a_413_on_a_presign_batch_caps_the_count_not_the_bytes(tmp_path: Path) -> None:
    rig = _rig(tmp_path, inline_max_bytes=1000)
    for i in range(4):
        rig.drop(f"big{i}.csv", b"x" * 5000 + bytes([i]))
    for i in range(3):
        rig.drop(f"small{i}.csv", f"{i}\n")
    rig.api.script = [RequestTooLarge("Request Too Long", status=413)]
    rig.run()
    # Refused with the 4 asks (the small files did not fit beside them); the next request
    # carries half as many entries.
    assert [c.request.entries for c in rig.api.calls][:2] == [4, 2]
    assert rig.spool.counts()["delivered"] == 7
    rig.spool.close()


def test_an_upload_whose_urls_expired_asks_for_fresh_ones_and_keeps_its_sent_parts(
    tmp_path: Path,
) -> None:
    rig = _rig(tmp_path, multipart_threshold_bytes=8 * 1024**2)
    data = os.urandom(40 * 1024**2 + 5)
    rig.drop("huge.csv", data)
    rig.api.put_errors = [None, TransientError("storage answered 503", status=503)]
    rig.clock.advance(rig.ledger.wait_time())
    assert rig.deliverer.step().requested
    assert len(rig.api.puts) == 1
    rig.clock.advance(2 * 3600)  # the URLs (an hour) are gone
    assert rig.run() == 1  # one request for fresh URLs
    again = rig.api.calls[1].presign
    upload_id = "up-" + hashlib.sha256(data).hexdigest()[:8]
    assert [(p.parts, p.upload_id) for p in again] == [(3, upload_id)]
    assert [url.rsplit("/", 1)[1] for url, _h, _d in rig.api.puts] == ["1", "2", "3"]
    ((_url, xml),) = rig.api.completions
    assert xml.count(b"<PartNumber>") == 3
    assert rig.states() == {"huge.csv": "delivered"}
    rig.spool.close()


def test_presign_asks_stop_at_the_apis_url_budget(tmp_path: Path) -> None:
    rig = _rig(tmp_path, inline_max_bytes=10)
    for i in range(3):
        rig.drop(f"big{i}.csv", b"x" * 100 + bytes([i]))
    with mock.patch.object(limits, "PRESIGNED_URLS", 2):
        rig.run()
    assert [len(c.presign) for c in rig.api.calls] == [2, 1]
    rig.spool.close()


def test_a_name_that_is_not_utf8_is_delivered_under_a_utf8_name(rig: Rig) -> None:
    path = rig.root / os.fsdecode(b"r\xff\xfe.csv")
    rig.drop(path.name, "a,b\n")
    assert rig.run() == 1
    assert rig.states() == {path.name: "delivered"}
    (sent,) = rig.api.calls[0].files
    assert sent.filename == "r\ufffd\ufffd.csv"
    assert sent.data == b"a,b\n"


# -- the per-item firewall ----------------------------------------------------------------------


def test_an_exception_parsing_one_file_fails_that_file_alone(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = parse_session_file

    def parse(data: bytes, **kwargs: Any) -> Any:
        if b"poison" in data:
            raise ZeroDivisionError("a bug in the parser")
        return real(data, **kwargs)

    monkeypatch.setattr("exportsync.batcher.parse_session_file", parse)
    rig.drop("a.session.json", _session("2026-11-25T10:00:00Z", x="poison"))
    rig.drop("b.session.json", _session("2026-11-25T10:00:01Z"))
    with capture_logs() as logs:
        assert rig.run() == 1
    assert rig.states() == {"a.session.json": "failed", "b.session.json": "delivered"}
    [failed] = rig.spool.items("failed")
    assert failed.last_error == "ZeroDivisionError: a bug in the parser"
    assert "item_firewalled" in [e["event"] for e in logs]


def test_an_exception_recording_one_result_settles_that_item_alone(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = rig.drop("a.csv", "1\n")
    rig.drop("b.csv", "2\n")
    [poison] = [i.id for i in rig.spool.items() if i.path == a]
    real = rig.spool.mark_delivered_many

    def mark_delivered_many(delivered: list[tuple[int, str | None]], **kwargs: Any) -> list[int]:
        if poison in [item_id for item_id, _ in delivered]:
            raise KeyError("a bug while recording")
        return real(delivered, **kwargs)

    # The answer's items are recorded together; the fault of one is then found alone.
    monkeypatch.setattr(rig.spool, "mark_delivered_many", mark_delivered_many)
    assert rig.run() == 1
    assert rig.states() == {"a.csv": "failed", "b.csv": "delivered"}
    assert rig.spool.get(poison).last_error == "KeyError: 'a bug while recording'"  # type: ignore[union-attr]


def test_a_request_that_raises_for_one_file_narrows_down_to_it_and_fails_it(rig: Rig) -> None:
    rig.drop("a.csv", "poison\n")
    rig.drop("b.csv", "2\n")
    rig.drop("c.csv", "3\n")
    real = rig.api.batch

    def batch(request: BatchRequest) -> list[dict[str, Any]]:
        if any(f.data == b"poison\n" for f in request.files):
            raise UnicodeEncodeError("utf-8", "x", 0, 1, "a bug building the request")
        return real(request)

    rig.api.batch = batch  # type: ignore[method-assign]
    rig.run(max_steps=100)
    assert rig.states() == {"a.csv": "failed", "b.csv": "delivered", "c.csv": "delivered"}
    [failed] = rig.spool.items("failed")
    assert (failed.last_error or "").startswith("UnicodeEncodeError: ")
    assert failed.attempts == sender.INTERNAL_ERROR_ATTEMPTS


def test_a_rewrite_before_delivery_supersedes_the_spooled_version(rig: Rig) -> None:
    """Written, closed and spooled, then opened and written again: only the new bytes go."""
    path = rig.drop("r.csv", "id\n1\n")
    old = rig.spool.items("pending")
    with path.open("ab") as writer:
        writer.write(b"2\n")
    assert rig.intake.offer(path) is not None
    assert rig.run() == 1
    (call,) = rig.api.calls
    assert [f.data for f in call.files] == [b"id\n1\n2\n"]
    assert [i.state for i in rig.spool.items()] == ["delivered"]
    assert rig.spool.get(old[0].id) is None


def test_a_rewrite_not_yet_spooled_is_not_sent_as_the_old_version(rig: Rig) -> None:
    """The writer closed again but the new version is not recorded yet: the old one is not sent
    (its bytes are gone); the new one is, once read."""
    path = rig.drop("r.csv", "id\n1\n")
    path.write_bytes(b"id\n1\n2\n")
    rig.run()
    sent = [f.data for c in rig.api.calls for f in c.files]
    assert sent == [b"id\n1\n2\n"]


def test_a_retry_scheduled_before_the_clock_was_set_back_does_not_wait_out_the_step(
    rig: Rig,
) -> None:
    """Retry times and arrival times are wall time: a clock stepped back three hours (NTP, a
    dead RTC battery) left an item waiting three hours more (its retry, then the pacing's quiet
    window after its arrival)."""
    rig.clock.advance(12 * 3600)  # midday: three hours back is still the same quota day
    rig.drop("a.csv", "1\n")
    rig.api.script = [TransientError("HTTP 503", status=503)]
    while not (outcome := rig.deliverer.step()).requested:  # the bucket starts empty
        rig.clock.advance(outcome.wait or 0.0)
    rig.clock.set_time(rig.clock.time() - 3 * 3600)
    before = rig.clock.time()
    assert rig.run() == 1
    assert rig.states() == {"a.csv": "delivered"}
    assert rig.clock.time() - before < LONGEST_DELAY


def test_the_items_of_a_failed_request_come_back_together_in_one_request(rig: Rig) -> None:
    """One backoff for the request, not a jitter per item: scattered retry times would each
    find a quiet folder and go as a request of their own."""
    for n in range(30):
        rig.drop(f"f{n:02d}.csv", f"{n}\n")
    rig.api.script = [TransientError("/batch: no answer within 30s")]
    assert rig.run() == 2
    assert [len(call.files) for call in rig.api.calls] == [30, 30]
    assert set(rig.states().values()) == {"delivered"}


def test_a_backlog_waits_while_the_intake_still_holds_files(tmp_path: Path) -> None:
    """Files seen and not yet spooled (settling, or being hashed) keep the folder from being
    quiet, so a backlog read in slowly is not sent in slices; the 30 s cap still holds."""
    busy = [True]
    rig = _rig(tmp_path, pacing=Pacing(quiet_seconds=2.0), intake_busy=lambda: busy[0])
    rig.drop("a.csv", "1\n")
    for _ in range(5):  # 10 s: five quiet windows pass, the intake is still at work
        outcome = rig.deliverer.step()
        assert not outcome.requested
        assert outcome.wait
        rig.clock.advance(2.0)
    assert rig.api.calls == []
    busy[0] = False
    rig.drop("b.csv", "2\n")
    assert rig.run() == 1
    assert [len(call.files) for call in rig.api.calls] == [2]


def test_a_busy_intake_holds_a_backlog_back_at_most_the_quiet_cap(tmp_path: Path) -> None:
    rig = _rig(tmp_path, pacing=Pacing(quiet_seconds=2.0), intake_busy=lambda: True)
    rig.drop("a.csv", "1\n")
    assert rig.run() == 1
    assert rig.clock.time() - START == pytest.approx(MAX_QUIET_SECONDS)


@pytest.mark.parametrize("daily", [10, 0])  # a full request; no daily limit: any request
def test_a_request_that_goes_at_once_waits_while_the_intake_reads_a_burst_in(
    tmp_path: Path, daily: int
) -> None:
    """Building a request reads and compresses its files: beside a burst's intake it slows the
    recording of the burst, for a request that would carry as many files or fewer."""
    busy = [True]
    rig = _rig(tmp_path, daily=daily, batch_max_files=2, intake_busy=lambda: busy[0])
    for n in range(5):
        rig.drop(f"f{n}.csv", f"{n}\n")
    rig.clock.advance(2.0)  # the rate's bucket, empty at the start, has its request
    for _ in range(5):
        outcome = rig.deliverer.step()
        assert not outcome.requested
        assert outcome.wait == INTAKE_RECHECK_SECONDS
        rig.clock.advance(outcome.wait)
    assert rig.api.calls == []
    busy[0] = False
    assert rig.deliverer.step().requested
    assert [len(call.files) for call in rig.api.calls] == [2]


def test_a_busy_intake_holds_a_full_request_back_at_most_a_short_while(tmp_path: Path) -> None:
    rig = _rig(tmp_path, batch_max_files=2, intake_busy=lambda: True)
    for n in range(5):
        rig.drop(f"f{n}.csv", f"{n}\n")
    rig.clock.advance(2.0)  # the rate's bucket, empty at the start, has its request
    while not (outcome := rig.deliverer.step()).requested:
        rig.clock.advance(outcome.wait or 0.0)
    held = rig.clock.time() - START - 2.0
    assert FULL_WAITS_FOR_INTAKE_SECONDS - 1e-3 <= held < FULL_WAITS_FOR_INTAKE_SECONDS + 0.2
    # Once held that long, the busy spell holds nothing more: the next goes at the rate's pace.
    rig.clock.advance(rig.deliverer.step().wait or 0.0)
    assert rig.deliverer.step().requested


def test_the_wait_for_the_intake_does_not_plan_again_nor_stretch_when_the_clock_goes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = _rig(tmp_path, batch_max_files=2, intake_busy=lambda: True)
    for n in range(5):
        rig.drop(f"f{n}.csv", f"{n}\n")
    rig.clock.advance(2.0)
    assert rig.deliverer.step().wait == INTAKE_RECHECK_SECONDS
    plans: list[float] = []
    backlog = rig.spool.backlog

    def counted(*args: Any, **kwargs: Any) -> Any:
        plans.append(rig.clock.time())
        return backlog(*args, **kwargs)

    monkeypatch.setattr(rig.spool, "backlog", counted)
    rig.clock.set_time(rig.clock.time() - 600)  # the wall clock set back: monotonic goes on
    started = rig.clock.monotonic()
    while rig.deliverer.step().wait == INTAKE_RECHECK_SECONDS:
        rig.clock.advance(INTAKE_RECHECK_SECONDS)
    assert rig.clock.monotonic() - started <= FULL_WAITS_FOR_INTAKE_SECONDS + 1e-3
    assert len(plans) == 1  # planned again only once the wait was over


def test_the_fsyncs_of_a_request_do_not_grow_with_the_files_it_carries(tmp_path: Path) -> None:
    """The delivered items of one answer are recorded in one transaction (one fsync), whether
    the request carried 2 files or 40."""
    synced: dict[int, int] = {}
    for files in (2, 40):
        (tmp_path / str(files)).mkdir()
        rig = _rig(tmp_path / str(files))
        for i in range(files):
            rig.drop(f"f{i:02d}.csv", f"{files},{i}\n")
        before = rig.spool.synced_commits
        assert rig.run() == 1
        assert set(rig.states().values()) == {"delivered"}
        synced[files] = rig.spool.synced_commits - before
    assert synced[40] == synced[2]
