"""Chaos: the product's promise under a seeded storm of file operations, faults and kill -9.

"Nothing is lost. A file that appeared in the folder is delivered or sits in the spool with a
reason, through kill -9, network faults, bad input, files deleted or rewritten mid-flight. Replays
are harmless."

A `random.Random(seed)` drives ~150 operations on the export folder (support/chaos.py keeps a model
of every version written) while `exportsync run` delivers to a devstack that fails 15% of the
requests it accepts; the daemon is killed with SIGKILL twice and restarted. Once the spool has
settled, the folder's final state must have arrived exactly, and nothing else may be wrong.

`make test` runs one seed; `make soak` runs more (tests/soak/test_chaos_seeds.py). Other seeds:
EXPORTSYNC_CHAOS_SEEDS=1,2,3 pytest tests/e2e/test_chaos.py. Each run leaves
chaos-trace.txt (one line per operation) and the daemon logs in its tmp_path.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from exportsync.spool import Item
from support.chaos import Chaos, sending_count, sha256
from support.daemon import DaemonProcess, run_daemon, spool_items, write_config
from support.devstack import DevstackInfo, dynamo_items, s3_objects, start_devstack, wait_for

SEEDS = [int(s) for s in os.environ.get("EXPORTSYNC_CHAOS_SEEDS", "20261125").split(",")]
OPERATIONS = 150
OP_INTERVAL = 0.07  # seconds between operations: ~150 operations in ~13 s
KILLS = 2
INLINE_MAX = 2000
# A file that existed this long while a daemon was ready must have left a row in the spool (the
# watcher waits 0.5 s after a close, settle_seconds after a bare create such as a symlink) --
# provided the daemon showed it kept up: it spooled a file created after this one, at least
# SETTLE before this one vanished (a starved runner proves nothing either way).
TRACE_AFTER = 3.0
SETTLE = 1.0
# Wall time throughout: the lifetimes are compared with the daemon's log timestamps.
now = time.time
SETTLE_DEADLINE = 60.0


@dataclass
class _Lives:
    """When each daemon was ready (and until it was killed): the spans a file can be seen in."""

    spans: list[tuple[float, float]] = field(default_factory=list)
    _ready_since: float | None = None

    @property
    def is_ready(self) -> bool:
        return self._ready_since is not None

    def ready(self, at: float) -> None:
        self._ready_since = at

    def killed(self, at: float) -> None:
        if self._ready_since is not None:
            self.spans.append((self._ready_since, at))
        self._ready_since = None

    def overlap(self, start: float, end: float) -> float:
        spans = [*self.spans]
        if self._ready_since is not None:
            spans.append((self._ready_since, float("inf")))
        return sum(max(0.0, min(end, b) - max(start, a)) for a, b in spans)


def _config(tmp_path: Path, info: DevstackInfo) -> Path:
    return write_config(
        tmp_path,
        info,
        quota={"daily_requests": 0, "requests_per_second": 10, "burst": 5},
        api={"batch_max_files": 5, "timeout_seconds": 2, "inline_max_bytes": INLINE_MAX},
        watch={"settle_seconds": 1.0},
    )


def _storm(tmp_path: Path, config: Path, chaos: Chaos, rng: random.Random) -> _Lives:
    """Run the operations while daemons come and go; returns when each daemon was ready."""
    lives = _Lives()
    kill_at = sorted(rng.sample(range(20, OPERATIONS - 30), KILLS))
    down_for = 0
    with contextlib.ExitStack() as stack:
        daemon: DaemonProcess | None = stack.enter_context(run_daemon(config))
        assert daemon is not None
        daemon.wait_ready()
        lives.ready(now())
        for n in range(OPERATIONS):
            if daemon is not None and n in kill_at:
                # Aim the SIGKILL at a request in flight when there is one within a moment.
                wait_for(lambda: sending_count(config.parent / "state") > 0, 2.0, 0.005)
                daemon.kill()
                lives.killed(now())
                chaos.mark(f"kill -9 before operation {n}")
                daemon = None
                down_for = rng.randint(2, 8)
            elif daemon is None and down_for == 0:
                daemon = stack.enter_context(run_daemon(config))
                chaos.mark(f"restart before operation {n}")
            elif daemon is None:
                down_for -= 1
            chaos.step()
            if daemon is not None and not lives.is_ready and daemon.saw("daemon_ready"):
                lives.ready(now())
            time.sleep(OP_INTERVAL)  # pacing of the storm itself, not a wait for the daemon
        chaos.mark("storm over")
        (tmp_path / "chaos-trace.txt").write_text("\n".join(chaos.trace) + "\n")
        assert daemon is not None
        if not lives.is_ready:
            daemon.wait_ready()
            lives.ready(now())
        export = tmp_path / "export"
        settled = wait_for(lambda: _settled(daemon, export, chaos), SETTLE_DEADLINE, 0.2)
        assert settled, _stuck_report(daemon, export, chaos)
        chaos.mark("settled")
        (tmp_path / "chaos-trace.txt").write_text("\n".join(chaos.trace) + "\n")
        assert daemon.terminate() == 0, daemon.output()
    return lives


def _by_key(items: list[Item]) -> dict[tuple[str, str | None], Item]:
    return {(str(i.path), i.sha256): i for i in items}


def _final_sha(chaos: Chaos, name: str) -> str | None:
    """The spooled hash of the file's last version (none for a symlink, refused unread)."""
    entry = chaos.present[name]
    return None if entry.kind == "symlink" else entry.sha256


def _settled(daemon: DaemonProcess, export: Path, chaos: Chaos) -> bool:
    """Nothing pending or sending, and every file in the folder has its final version spooled."""
    items = spool_items(daemon.state_dir)
    if any(i.state in ("pending", "sending") for i in items):
        return False
    keys = _by_key(items)
    return all((str(export / name), _final_sha(chaos, name)) in keys for name in chaos.present)


def _stuck_report(daemon: DaemonProcess, export: Path, chaos: Chaos) -> str:
    items = spool_items(daemon.state_dir)
    keys = _by_key(items)
    stuck = [i for i in items if i.state in ("pending", "sending")]
    missing = [n for n in chaos.present if (str(export / n), _final_sha(chaos, n)) not in keys]
    return f"stuck: {stuck}\nfinal versions never spooled: {missing}\n{daemon.output()}"


@dataclass(frozen=True)
class _World:
    """What the run left: the spool's rows, S3's objects by digest, DynamoDB's sessions."""

    export: Path
    user_id: str
    items: list[Item]
    keys: dict[tuple[str, str | None], Item]
    landed: dict[str, list[bytes]]
    stored: dict[str, dict[str, object]]
    spooled: list[tuple[float, str]]  # (wall time, name) of every item_spooled the daemons logged

    @classmethod
    def read(
        cls,
        export: Path,
        user_id: str,
        items: list[Item],
        objects: dict[str, bytes],
        sessions: list[dict[str, object]],
        *,
        logs: list[dict[str, object]],
    ) -> _World:
        landed: dict[str, list[bytes]] = defaultdict(list)
        for key, data in objects.items():
            prefix, user, sha, _name = key.split("/")
            assert (prefix, user) == ("uploads", user_id), key
            landed[sha].append(data)
        assert {s["user_id"] for s in sessions} <= {user_id}
        stored = {str(s["timestamp"]): s for s in sessions}
        spooled = [
            (_epoch(str(e["timestamp"])), str(Path(str(e["path"])).relative_to(export)))
            for e in logs
            if e.get("event") == "item_spooled"
        ]
        return cls(export, user_id, items, _by_key(items), dict(landed), stored, spooled)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _log_events(tmp_path: Path) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    for path in sorted(tmp_path.glob("daemon-*.log")):
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    events.append(event)
    return events


def _same(got: dict[str, object] | None, want: dict[str, object]) -> bool:
    return got is not None and {k: got.get(k) for k in want} == want


def _check_spool(items: list[Item]) -> list[str]:
    """(2) Nothing stuck in pending or sending; every failure says why."""
    problems = [f"stuck in {i.state}: {i}" for i in items if i.state in ("pending", "sending")]
    return problems + [
        f"failed without a reason: {i}"
        for i in items
        if i.state == "failed" and not (i.last_error or "").strip()
    ]


def _check_final(world: _World, chaos: Chaos) -> list[str]:
    """(1), (3) The folder as it ends: each file delivered with its final content, or refused."""
    problems: list[str] = []
    for name, entry in sorted(chaos.present.items()):
        item = world.keys.get((str(world.export / name), _final_sha(chaos, name)))
        if item is None:
            problems.append(f"{name!r}: final version ({entry.kind}) never spooled")
            continue
        reason = item.last_error or ""
        if entry.kind == "symlink":
            if item.state != "failed" or "symlink" not in reason:
                problems.append(f"{name!r}: symlink not refused with a reason: {item}")
        elif entry.kind == "session" and entry.style != "valid":
            if item.state != "failed" or not ("NaN" in reason or "invalid JSON" in reason):
                problems.append(f"{name!r}: {entry.style} session file not failed: {item}")
        elif item.state != "delivered":
            problems.append(f"{name!r}: final version {item.state}: {reason}")
        elif entry.kind == "csv":
            if entry.data not in world.landed.get(entry.sha256, []):
                problems.append(f"{name!r}: delivered but its bytes are not in S3")
        else:
            for session in entry.sessions:
                got = world.stored.get(session.timestamp)
                if not _same(got, session.expected()):
                    problems.append(
                        f"{name!r}: session {session.timestamp} is {got}, not {session}"
                    )
    return problems


def _check_traces(world: _World, chaos: Chaos, lives: _Lives) -> list[str]:
    """(2) A file that lived long enough while a daemon ran left a row, even if it is gone now."""
    spooled = {str(i.path) for i in world.items}
    problems = []
    for life in chaos.lifetimes:
        end = life.end if life.end is not None else now()
        seen_for = lives.overlap(life.start, end)
        if (
            seen_for >= TRACE_AFTER
            and str(world.export / life.name) not in spooled
            and _kept_up(world, chaos, life.start, end, life.name)
        ):
            problems.append(f"{life.name!r} existed {seen_for:.1f}s under a daemon, no spool row")
    return problems


def _kept_up(world: _World, chaos: Chaos, start: float, end: float, name: str) -> bool:
    """The positive signal: the daemon spooled another file created after `start`, no later
    than SETTLE before `end` (the watcher handles events in order, so it had seen `name`'s)."""
    for at, other in world.spooled:
        if other == name or at > end - SETTLE:
            continue
        if any(life.name == other and start < life.start < at for life in chaos.lifetimes):
            return True
    return False


def _check_landed(world: _World, chaos: Chaos) -> list[str]:
    """(4) Every object is a complete version under its own digest; every delivered CSV row
    landed; DynamoDB holds no session values that were never written."""
    problems = [
        f"delivered but not in S3: {i}"
        for i in world.items
        if i.kind == "csv" and i.state == "delivered" and i.sha256 not in world.landed
    ]
    for sha, datas in world.landed.items():
        for data in datas:
            if sha256(data) != sha or data not in chaos.csv_versions:
                problems.append(f"object under {sha[:12]} holds {len(data)} bytes never written")
    for timestamp, got in world.stored.items():
        written = [s.expected() for s in chaos.session_values.get(timestamp, [])]
        if not any(_same(got, want) for want in written):
            problems.append(f"session {timestamp} holds values never written: {got}")
    return problems


@pytest.mark.timeout(240)
@pytest.mark.parametrize("seed", SEEDS)
def test_nothing_is_lost_through_a_seeded_storm(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 -- a reproducible test scenario
    faults = ("--fault-rate", "0.15", "--seed", str(seed))
    plan = ("--quota", "0", "--rate", "20", "--burst", "20")
    with start_devstack(tmp_path / "ds", *plan, *faults) as info:
        config = _config(tmp_path, info)
        export = tmp_path / "export"
        chaos = Chaos(export, tmp_path / "outside", rng, info.user_id, INLINE_MAX, clock=now)
        lives = _storm(tmp_path, config, chaos, rng)
        items = spool_items(tmp_path / "state")
        objects = s3_objects(info)
        sessions = dynamo_items(info)

    world = _World.read(export, info.user_id, items, objects, sessions, logs=_log_events(tmp_path))
    problems = _check_final(world, chaos)
    problems += _check_spool(items)
    problems += _check_traces(world, chaos, lives)
    problems += _check_landed(world, chaos)
    # (5) The key is in no log.
    logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("daemon-*.log"))
    if info.api_key in logs:
        problems.append("the API key appears in a daemon log")

    trace = (tmp_path / "chaos-trace.txt").read_text()
    assert not problems, "\n".join([f"seed {seed}:", *problems, "trace:", trace[-6000:]])


def test_a_file_deleted_before_delivery_then_exported_again_is_delivered(tmp_path: Path) -> None:
    """Found by the storm (seed 1): the re-export, same name and bytes, once found the failed row
    of the file's first life in the spool and was never sent, while it sat in the folder."""
    with start_devstack(tmp_path / "ds", "--quota", "0") as info:
        # A quiet window far longer than the delete takes, so the delete always lands inside it.
        config = write_config(tmp_path, info, quota={"quiet_seconds": 5.0})
        report = tmp_path / "export" / "report.csv"
        data = b"id,value\n1,2\n"
        with run_daemon(config) as daemon:
            daemon.wait_ready()
            report.write_bytes(data)
            assert wait_for(lambda: daemon.saw("item_spooled"), 10), daemon.output()
            report.unlink()  # within the quiet window: the row fails as deleted
            assert not daemon.saw("request_sending"), "the delete came after the quiet window"
            assert wait_for(lambda: daemon.saw("item_failed"), 30), daemon.output()
            report.write_bytes(data)  # exported again, same bytes
            assert wait_for(lambda: daemon.saw("item_spooled", 2), 10), daemon.output()
            delivered = wait_for(
                lambda: any(i.state == "delivered" for i in spool_items(daemon.state_dir)), 30
            )
            assert daemon.terminate() == 0
        assert delivered, [(i.state, i.last_error) for i in spool_items(tmp_path / "state")]
        assert data in s3_objects(info).values()
