"""The never-stuck invariant as a hypothesis state machine.

One daemon's delivery step on a fake clock, a fake API that keeps a server's table, and a real
SQLite spool whose writes fail at random points (`support.flaky_spool`). Rules drop files, script
the next answer (stored, 503, an unknown status, the disk filling while the request is out), fail
writes, restore space, step and restart. After every step:

* no item sits in `sending` longer than the request timeout plus a margin, counted from when the
  spool could last be written (while it cannot, nothing can be recorded at all);
* nothing is lost: every file dropped is on the server, in the spool, or still offered by the
  watcher (a spool write failed); nothing is `failed` (every input is valid);
* no session is stored twice, and the spool calls nothing delivered that the server lacks.

At the end, with room, everything is delivered. ``EXPORTSYNC_STUCK_EXAMPLES`` sets the number of
examples (`make reliability` runs 2,000; `make test` the default below).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from exportsync.clock import FakeClock
from exportsync.config import ApiConfig, WatchConfig
from exportsync.delivery import Deliverer
from exportsync.errors import SpoolError, TransientError
from exportsync.intake import Intake
from exportsync.matcher import FileMatcher
from exportsync.outcomes import retry_delay
from exportsync.pacing import Pacing
from exportsync.quota import DAY
from support.fake_api import Call, FakeApi
from support.flaky_spool import FlakySpool
from support.ledger import plan_ledger
from support.settings import api_settings

EXAMPLES = int(os.environ.get("EXPORTSYNC_STUCK_EXAMPLES", "25"))
TIMEOUT = ApiConfig.timeout_seconds
MARGIN = 10.0
START = 1_800_000_000.0 - (1_800_000_000.0 % DAY) + 3600
# Small requests, so a session file goes in slices and a backlog in several requests.
BATCH_ENTRIES = 3
_SHM = Path("/dev/shm")  # noqa: S108 -- a RAM disk when there is one: fsync costs nothing


class Server(FakeApi):
    """The fake API with a table: (user_id, timestamp) -> the body first stored there."""

    def __init__(self) -> None:
        super().__init__()
        self.table: dict[tuple[str, str], bytes] = {}
        self.stores: dict[tuple[str, str], int] = {}

    def _session(self, body: bytes) -> dict[str, Any]:
        doc = json.loads(body)
        key = (str(doc["user_id"]), str(doc["timestamp"]))
        if key in self.table:
            status = "duplicate" if self.table[key] == body else "rejected"
        else:
            self.table[key] = body
            self.stores[key] = self.stores.get(key, 0) + 1
            status = "stored"
        return {"kind": "session", "status": status, "user_id": key[0], "timestamp": key[1]}


class NeverStuck(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        base = _SHM if _SHM.is_dir() and os.access(_SHM, os.W_OK) else None
        self.base = Path(tempfile.mkdtemp(prefix="exportsync-stuck-", dir=base))
        self.root = self.base / "export"
        self.root.mkdir()
        self.clock = FakeClock(START)
        self.api = Server()
        self.spool = FlakySpool.open(self.base / "state")
        self.writable_since = START  # the last time a spool write failed
        self.dropped: dict[str, str] = {}  # file name -> what the server must end up holding
        self.unoffered: set[str] = set()  # dropped, and the spool write for it failed
        self.files_seen = 0
        self._start()

    def _start(self) -> None:
        """The daemon starting on the spool: a fresh deliverer and ledger, crash recovery."""
        self.deliverer = Deliverer(
            spool=self.spool,
            ledger=plan_ledger(self.spool, self.clock, daily_requests=0),
            api=self.api,
            clock=self.clock,
            watch=WatchConfig(self.root),
            settings=api_settings(batch_max_files=BATCH_ENTRIES),
            pacing=Pacing(quiet_seconds=0.0, prompt_requests=1000),
        )
        self.intake = Intake(self.spool, root=self.root, matcher=FileMatcher(), clock=self.clock)
        try:
            self.spool.recover(self.clock.time())
        except SpoolError:
            self._write_failed()  # the first step releases them once it can

    def _write_failed(self) -> None:
        self.writable_since = self.clock.time()

    def teardown(self) -> None:
        try:
            self._settle()
        finally:
            self.spool.close()
            shutil.rmtree(self.base, ignore_errors=True)

    # -- the world -----------------------------------------------------------------------------

    @rule(kind=st.sampled_from(["csv", "session"]), sessions=st.integers(1, 5))
    def drop_file(self, kind: str, sessions: int) -> None:
        n = self.files_seen = self.files_seen + 1
        if kind == "csv":
            name, text = f"f{n}.csv", f"n,x\n{n},{'y' * (n % 7)}\n"
        else:
            docs = [
                {"timestamp": f"2026-11-25T10:{n % 60:02d}:{i:02d}.{n}Z"} for i in range(sessions)
            ]
            name, text = f"s{n}.session.json", json.dumps(docs)
        (self.root / name).write_text(text)
        self.dropped[name] = text
        self.unoffered.add(name)
        self._offer_waiting()

    def _offer_waiting(self) -> None:
        """The watcher offers what it saw; a failed spool write is offered again at its next
        rescan, as `Daemon._offer` makes it do."""
        for name in sorted(self.unoffered):
            try:
                self.intake.offer(self.root / name)
            except SpoolError:
                self._write_failed()
                return
            self.unoffered.discard(name)

    @rule(
        answer=st.sampled_from(["stored", "503", "unknown", "full+stored", "full+503", "full+ok"])
    )
    def next_answer(self, answer: str) -> None:
        def respond(call: Call) -> list[dict[str, Any]]:
            if answer.startswith("full+"):
                self.spool.full = True  # the state disk fills while the request is out
            if answer.endswith("503"):
                raise TransientError("HTTP 503", status=503)
            results = self.api.default_results(call.request)
            if answer.endswith(("unknown", "ok")):
                for result in results:
                    result["status"] = "ok"
            return results

        self.api.script.append(respond)

    @rule(n=st.integers(1, 4))
    def fail_writes(self, n: int) -> None:
        self.spool.fail_next = n

    @rule()
    def fill_disk(self) -> None:
        self.spool.full = True

    @rule()
    def restore_space(self) -> None:
        self.spool.full = False
        self.spool.fail_next = 0
        self._offer_waiting()

    @rule(steps=st.integers(1, 6))
    def run(self, steps: int) -> None:
        for _ in range(steps):
            self._step()

    @precondition(lambda self: not self.spool.full)
    @rule()
    def restart(self) -> None:
        self.spool.close()
        self.spool = FlakySpool.open(self.base / "state")
        self._start()
        self._offer_waiting()

    def _step(self) -> None:
        """One turn of the daemon's loop: a step, then its wait (a failed write: its pause)."""
        try:
            outcome = self.deliverer.step()
        except SpoolError:
            self._write_failed()
            self.clock.advance(retry_delay(1))
            return
        self.clock.advance(min(outcome.wait if outcome.wait is not None else 60.0, 120.0))

    def _settle(self) -> None:
        self.spool.full = False
        self.spool.fail_next = 0
        self.api.script.clear()
        self._offer_waiting()
        for _ in range(400):
            self._step()
            self.the_invariants_hold()
            counts = self.spool.counts()
            if not self.unoffered and counts["pending"] == counts["sending"] == 0:
                break
        counts = self.spool.counts()
        assert counts["pending"] == counts["sending"] == counts["failed"] == 0, counts
        for name, text in self.dropped.items():
            assert self._on_server(name, text), f"{name} lost"

    # -- the checks ------------------------------------------------------------------------------

    def _on_server(self, name: str, text: str) -> bool:
        if name.endswith(".csv"):
            digest = hashlib.sha256(text.encode()).hexdigest()
            return f"uploads/u/{digest}/{name}" in self.api.stored
        return all(("alice", doc["timestamp"]) in self.api.table for doc in json.loads(text))

    @invariant()
    def the_invariants_hold(self) -> None:
        now = self.clock.time()
        items = {i.path.name: i for i in self.spool.items(limit=100_000)}
        for item in items.values():
            if item.state == "sending":
                since = max(item.updated_at, self.writable_since)
                assert now - since <= TIMEOUT + MARGIN, (
                    f"{item.path.name} in sending for {now - item.updated_at:.0f} s"
                )
            assert item.state != "failed", f"{item.path.name} failed: {item.last_error}"
            if item.state == "delivered":
                assert self._on_server(item.path.name, self.dropped[item.path.name])
        for name, text in self.dropped.items():
            assert name in items or name in self.unoffered or self._on_server(name, text), (
                f"{name} lost"
            )
        assert all(n == 1 for n in self.api.stores.values()), "a session stored twice"


NeverStuck.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_never_stuck = NeverStuck.TestCase
