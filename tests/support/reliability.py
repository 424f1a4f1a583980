"""`make reliability`: real `exportsync run` processes tortured against a faulty devstack.

One seeded run (`python -m support.reliability --seed N --kills K`):

* a devstack failing a share (`--fault-rate`, 0.2) of the requests it accepts;
* a storm of ordinary file operations (support/chaos.py) and two rounds of the hostile corpus
  (support/corpus.py), one in the folder before the first start, one dropped while running;
* K kill -9 at random points: just after a request went out, just after a presigned PUT began,
  just after a file was detected (its spool write), or at a random moment; the daemon is started
  again at once;
* CSVs deleted, truncated and rewritten while they are being sent;
* the spool overwritten with garbage between two runs (the daemon must set it aside);
* a full disk: the state dir is a small tmpfs (when running as root), filled while a request's
  answer is held by a relay in front of the devstack (support/relay.py), so the answer arrives
  when nothing can be recorded, and left full for a while;
* the spool replaced by garbage while the daemon runs (it must put it right without a restart);
* answers whose statuses the contract does not name (`"ok"`): retried, never failed;
* stray signals: HUP, USR2, ALRM and PIPE must change nothing; TERM and INT drain (exit 0), and
  the daemon is started again;
* wall-clock jumps (support/skewclock.py): a day forward, then three hours back, while a daily
  quota with a reset time is in force.

At the end it compares the folder with S3 and DynamoDB (moto's server over HTTP) and the spool,
prints every problem, and last: ``reliability: K kills, F faults, B bad inputs, lost L,
duplicated D, stuck S`` (S: the seconds items sat in `sending` beyond the request timeout plus a
margin, the full disk's time not counted, summed over items; support/stuck.py). Exit 1 when
anything was lost or duplicated, an item was stuck, a bad input is not `failed` with a reason, a
daemon exited by itself, or anything else is wrong. The run's folder (logs, trace) is kept on
failure.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from exportsync.errors import SpoolError
from support.chaos import Chaos, MidSend
from support.corpus import Hostile, hostile
from support.daemon import DaemonProcess, run_daemon, spool_items, write_config
from support.devstack import DevstackInfo, start_devstack, usage, wait_for
from support.fullfs import fill, small_tmpfs
from support.relay import Relay
from support.skewclock import set_offset
from support.stuck import SendingWatch
from support.verdict import Verdict, judge

__all__ = ["Options", "Outcome", "main", "run"]

INLINE_MAX = 2000
OP_INTERVAL = 0.05  # pacing of the storm itself
TRIGGER_WAIT = 3.0  # how long a kill waits for the moment it aims at
DISK_FULL_OPS = 25  # operations while the state dir is full, at least
DISK_FULL_MAX_OPS = 200  # ... and at most, waiting for the daemon to meet the full disk
# Wall-clock offsets (seconds) applied in turn during the storm: a day and 17 minutes forward,
# then 3 h 17 min back. The daily reset is placed 6 h from now, far from every jumped-to time.
CLOCK_JUMPS = (86_400 + 1_020, 75_600)
TIMEOUT_SECONDS = 2  # the daemons' api.timeout_seconds
# How long past its timeout an item may stay in `sending` (a kill -9 and the restart, a loaded
# machine) before the run counts it stuck.
STUCK_MARGIN = 10.0
# Sent once each during the storm. The first four must change nothing (the daemon stays up);
# TERM and INT drain and exit 0, and the harness starts the daemon again.
STRAY_SIGNALS = ("SIGHUP", "SIGUSR2", "SIGALRM", "SIGPIPE", "SIGTERM", "SIGINT")
UNKNOWN_STATUS_ANSWERS = 2


@dataclass(frozen=True)
class Options:
    seed: int = 1
    kills: int = 30
    operations: int = 400
    fault_rate: float = 0.2
    corpus_every: int = 1  # 1 = every hostile kind; n = every n-th (the short run)
    settle_deadline: float = 240.0
    clock_jumps: tuple[int, ...] = CLOCK_JUMPS
    stray_signals: tuple[str, ...] = STRAY_SIGNALS
    base: Path | None = None  # a fresh temporary folder when None
    keep: bool = False


@dataclass
class Outcome:
    kills: int = 0
    faults: int = 0
    bad_inputs: int = 0
    stuck: float = 0.0
    verdict: Verdict = field(default_factory=Verdict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.verdict.ok

    def last_line(self) -> str:
        return (
            f"reliability: {self.kills} kills, {self.faults} faults, {self.bad_inputs} bad inputs,"
            f" lost {len(self.verdict.lost)}, duplicated {len(self.verdict.duplicated)},"
            f" stuck {self.stuck:.0f}"
        )


# -- the full disk ----------------------------------------------------------------------------


@contextlib.contextmanager
def _tmpfs(path: Path, notes: list[str]) -> Iterator[bool]:
    """`path` as a 16 MiB tmpfs when running as root; yields whether it is one."""
    with small_tmpfs(path) as why_not:
        if why_not is not None:
            notes.append(f"full disk: skipped ({why_not})")
        yield why_not is None


# -- killing at a chosen moment ---------------------------------------------------------------


_AIMS = ("request_sending", "upload_started", "file_detected", "random")


def _count(daemon: DaemonProcess, event: str) -> int:
    return sum(e.get("event") == event for e in daemon.events())


def _kill_aimed(daemon: DaemonProcess, aim: str, rng: random.Random) -> str:
    """Wait (a little) for the next `aim` event, then SIGKILL after a random delay."""
    if aim == "random":
        time.sleep(rng.uniform(0.0, 1.0))
        daemon.kill()
        return "at a random moment"
    before = _count(daemon, aim)
    hit = wait_for(lambda: _count(daemon, aim) > before, TRIGGER_WAIT, 0.01)
    time.sleep(rng.uniform(0.0, 0.15 if aim != "file_detected" else 0.03))
    daemon.kill()
    return f"{'after' if hit else 'waiting for'} {aim}"


def _waiter(daemon: DaemonProcess | None, event: str) -> object:
    """For Chaos.change_mid_send: returns once the daemon logs `event` again (or gives up)."""
    if daemon is None:
        return None
    before = _count(daemon, event)
    return wait_for(lambda: _count(daemon, event) > before, TRIGGER_WAIT, 0.01)


def _corrupt(state_dir: Path, rng: random.Random) -> None:
    """Garbage over the spool; its WAL goes too (SQLite would otherwise serve pages from it)."""
    spool = state_dir / "spool.sqlite3"
    size = max(spool.stat().st_size if spool.exists() else 0, 8192)
    spool.write_bytes(rng.randbytes(size))
    for suffix in ("-wal", "-shm"):
        spool.with_name(spool.name + suffix).unlink(missing_ok=True)


# -- the run ----------------------------------------------------------------------------------


@dataclass
class _Run:
    options: Options
    base: Path
    rng: random.Random
    config: Path
    chaos: Chaos
    offset_file: Path
    outcome: Outcome
    stack: contextlib.ExitStack
    relay: Relay
    watch: SendingWatch
    daemon: DaemonProcess | None = None
    corpus: list[Hostile] = field(default_factory=list)
    crashes: Counter[str] = field(default_factory=Counter)
    starts: int = 0

    @property
    def state_dir(self) -> Path:
        return self.base / "state"

    def start(self) -> DaemonProcess:
        self.daemon = self.stack.enter_context(
            run_daemon(self.config, clock_offset_file=self.offset_file)
        )
        self.starts += 1
        return self.daemon

    def check_alive(self) -> None:
        """A daemon that exited on its own is a finding; start it again, as systemd would
        (RestartSec=1: a crash loop is paced, not spun)."""
        if self.daemon is None or self.daemon.process.poll() is None:
            return
        rc = self.daemon.process.returncode
        lines = self.daemon.output().strip().splitlines() or ["(no output)"]
        if rc < 0:
            lines.append(f"(died of {signal.Signals(-rc).name})")
        self.crashes[f"rc {rc}: {lines[-1][:300]}"] += 1
        self.chaos.mark(f"daemon exited by itself, rc {rc} ({self.daemon.log_path.name})")
        time.sleep(1.0)
        self.start()

    def place(self, tag: str, day: int) -> None:
        every = self.options.corpus_every
        chosen = hostile(tag, self.base / "outside", day)[::every]
        for entry in chosen:
            entry.make(self.chaos.export / entry.name)
        self.corpus += chosen
        self.outcome.bad_inputs += len(chosen)
        self.chaos.mark(f"placed {len(chosen)} hostile inputs ({tag})")


def _schedule(options: Options, rng: random.Random) -> dict[int, str]:
    """Operation index -> what happens before it."""
    n = options.operations
    disk = n // 2
    plan: dict[int, str] = {
        n // 3: "corpus",
        disk: "disk_full",
        n // 4: "clock0",
        (3 * n) // 5: "clock1",
        n // 5: "mid_delete",
        (2 * n) // 5: "mid_truncate",
        (7 * n) // 10: "mid_rewrite",
    }
    # The full-disk window runs its own operations inside index `disk`: no kill falls in it.
    free = [i for i in range(3, n - 5) if i not in plan]
    plan[free.pop(len(free) * 4 // 5)] = "replace_spool"
    for _ in range(UNKNOWN_STATUS_ANSWERS):
        plan[free.pop(rng.randrange(len(free)))] = "unknown_status"
    for name in options.stray_signals:
        plan[free.pop(rng.randrange(len(free)))] = f"signal:{name}"
    kills = sorted(rng.sample(free, min(options.kills, len(free))))
    for i in kills:
        plan[i] = "kill"
    # The spool is damaged before the first clock jump: the daemon counts that quota day as used
    # up (a damaged spool lost its count), and the jump a day ahead is what ends that day.
    early = [i for i in kills if i < n // 4]
    if early:
        plan[early[-1]] = "kill_corrupt"
    elif kills:
        del plan[kills[0]]
        plan[next(i for i in range(n // 8, n) if i not in plan)] = "kill_corrupt"
    return plan


def _kill(run: _Run, corrupt: bool) -> None:
    daemon = run.daemon
    assert daemon is not None
    aim = run.rng.choice(_AIMS)
    how = _kill_aimed(daemon, aim, run.rng)
    run.outcome.kills += 1
    run.chaos.mark(f"kill -9 {how}")
    if corrupt:
        _corrupt(run.state_dir, run.rng)
        run.chaos.mark("spool overwritten with garbage")
    restarted = run.start()
    if corrupt:
        # Its quota day (counted as used) must be the one before the first clock jump.
        restarted.wait_ready()


def _disk_full(run: _Run, mounted: bool) -> None:
    """Hold the answer of the next request, fill the state dir, let the answer through, and go
    on writing files until the daemon has met the full disk (the WAL may have room of its own
    for a while), then make room again."""
    if not mounted:
        return
    daemon = run.daemon
    assert daemon is not None
    run.relay.hold_next()
    held = wait_for(_stepping(run, run.relay.holding.is_set), TRIGGER_WAIT * 5, OP_INTERVAL)
    filler = fill(run.state_dir)
    run.watch.disk_full(True)
    run.relay.release()
    run.outcome.faults += 1
    run.chaos.mark(f"state dir full ({'while an answer was held' if held else 'no request held'})")
    ops = 0
    while ops < DISK_FULL_OPS or (ops < DISK_FULL_MAX_OPS and not daemon.saw("spool_write_failed")):
        run.chaos.step()
        time.sleep(OP_INTERVAL)
        ops += 1
    failed = _count(daemon, "spool_write_failed")
    unavailable = _count(daemon, "spool_unavailable")
    filler.unlink()
    run.watch.disk_full(False)
    run.chaos.mark("state dir has room again")
    run.outcome.notes.append(
        f"full disk: state dir a 16 MiB tmpfs, full for {ops} operations"
        f" ({'an answer held until it was full' if held else 'no request was out'});"
        f" spool_write_failed logged {failed} times, spool_unavailable {unavailable}"
    )


def _stepping(run: _Run, done: Callable[[], bool]) -> Callable[[], bool]:
    """`done`, with a storm operation between two looks (a request needs something to send)."""

    def look() -> bool:
        if done():
            return True
        run.chaos.step()
        return False

    return look


def _running(run: _Run) -> bool:
    """Wait until the daemon (perhaps just restarted) is running: these faults are aimed at a
    running daemon, not at one still starting (a systemd reload waits for READY too). False
    when it exited meanwhile; check_alive reports that."""
    assert run.daemon is not None
    try:
        run.daemon.wait_ready()
    except AssertionError:
        return False
    return True


def _replace_spool(run: _Run) -> None:
    """Garbage renamed over the spool while the daemon runs: it must restore it by itself."""
    if not _running(run):
        return
    spool = run.state_dir / "spool.sqlite3"
    garbage = run.state_dir / "garbage"
    garbage.write_bytes(run.rng.randbytes(8192))
    garbage.rename(spool)
    run.outcome.faults += 1
    run.chaos.mark("spool replaced by garbage while running")


def _stray_signal(run: _Run, name: str) -> None:
    """HUP, USR2, ALRM, PIPE: nothing may change. TERM, INT: the daemon drains and exits 0."""
    if not _running(run):
        return
    daemon = run.daemon
    assert daemon is not None
    sig = signal.Signals[name]
    daemon.process.send_signal(sig)
    run.outcome.faults += 1
    run.chaos.mark(f"stray {name}")
    if sig not in (signal.SIGTERM, signal.SIGINT):
        return  # check_alive reports a daemon the signal ended
    try:
        rc = daemon.process.wait(30)
    except subprocess.TimeoutExpired:
        run.outcome.verdict.problems.append(f"{name} did not stop the daemon within 30 s")
        daemon.kill()
        rc = 0
    if rc != 0:
        run.outcome.verdict.problems.append(f"{name} stopped the daemon with rc {rc}")
    run.start()


def _storm(run: _Run, mounted: bool) -> None:
    plan = _schedule(run.options, run.rng)
    jumps = iter(run.options.clock_jumps)
    for n in range(run.options.operations):
        run.check_alive()
        what = plan.get(n)
        if what in ("kill", "kill_corrupt"):
            _kill(run, corrupt=what == "kill_corrupt")
        elif what == "corpus":
            run.place("live", 27)
        elif what == "disk_full":
            _disk_full(run, mounted)
        elif what == "replace_spool":
            _replace_spool(run)
        elif what == "unknown_status":
            run.relay.mangle_next()
            run.chaos.mark("the next answer's statuses will be 'ok'")
        elif what is not None and what.startswith("signal:"):
            _stray_signal(run, what.removeprefix("signal:"))
        elif what is not None and what.startswith("clock"):
            offset = next(jumps, None)
            if offset is None:
                continue
            set_offset(run.offset_file, offset)
            run.chaos.mark(f"wall clock jumps to real time {offset:+d} s")
        elif what is not None and what.startswith("mid_"):
            how: MidSend = (
                "delete"
                if what == "mid_delete"
                else ("truncate" if what == "mid_truncate" else "rewrite")
            )
            run.chaos.change_mid_send(how, lambda: _waiter(run.daemon, "upload_started"))
            run.outcome.bad_inputs += 1
        run.chaos.step()
        time.sleep(OP_INTERVAL)


def _settled(run: _Run) -> bool:
    run.check_alive()
    try:
        items = spool_items(run.state_dir)
    except SpoolError:
        return False  # damaged: the daemon must set it aside, or check_alive reports it
    if any(i.state in ("pending", "sending") for i in items):
        return False
    paths = {str(i.path) for i in items}
    export = run.chaos.export
    names = [*run.chaos.present, *(h.name for h in run.corpus if h.expect != "ignored")]
    return all(str(export / name) in paths for name in names)


def _reset_utc() -> dt.time:
    at = dt.datetime.now(dt.UTC) + dt.timedelta(hours=6)
    return dt.time(at.hour, at.minute)


def _config(base: Path, info: DevstackInfo, reset: dt.time, url: str) -> Path:
    config = write_config(
        base,
        info,
        # A daily limit far above what the run sends: the ledger and its day still apply.
        quota={
            "daily_requests": 1_000_000,
            "requests_per_second": 20,
            "burst": 10,
            "reset_utc": f"{reset.hour:02d}:{reset.minute:02d}",
        },
        api={
            "batch_max_files": 5,
            "timeout_seconds": TIMEOUT_SECONDS,
            "inline_max_bytes": INLINE_MAX,
        },
        # Debug: the kill aimed between a file's detection and its record waits for
        # `file_detected`, a debug line.
        log={"level": "debug"},
        watch={"settle_seconds": 0.5},
    )
    # Through the relay, which can hold an answer or rename its statuses.
    config.write_text(config.read_text().replace(json.dumps(info.api_url), json.dumps(url)))
    return config


def run(options: Options) -> Outcome:
    """One seeded torture run; returns what it counted and found (never raises for a finding)."""
    base = options.base or Path(tempfile.mkdtemp(prefix="exportsync-reliability-"))
    base.mkdir(parents=True, exist_ok=True)
    rng = random.Random(options.seed)  # noqa: S311 -- a reproducible scenario
    outcome = Outcome()
    plan = ("--quota", "0", "--rate", "50", "--burst", "20", "--slow-seconds", "2.5")
    faults = ("--fault-rate", str(options.fault_rate), "--seed", str(options.seed))
    offset_file = base / "clock-offset"
    set_offset(offset_file, 0)
    watch = SendingWatch(base / "state" / "spool.sqlite3", TIMEOUT_SECONDS + STUCK_MARGIN)
    with (
        _tmpfs(base / "state", outcome.notes) as mounted,
        start_devstack(base / "ds", *plan, *faults) as info,
        Relay(info.api_url) as relay,
        contextlib.ExitStack() as stack,
    ):
        reset = _reset_utc()
        config = _config(base, info, reset, relay.url)
        chaos = Chaos(base / "export", base / "outside", rng, info.user_id, INLINE_MAX)
        state = _Run(options, base, rng, config, chaos, offset_file, outcome, stack, relay, watch)
        watch.start()
        state.place("start", 26)
        for _ in range(10):
            chaos.step()
        state.start()
        _storm(state, mounted)
        chaos.mark("storm over")
        state.check_alive()
        settled = wait_for(lambda: _settled(state), options.settle_deadline, 0.25)
        chaos.mark("settled" if settled else "did not settle")
        state.check_alive()
        assert state.daemon is not None
        rc = state.daemon.terminate()
        watch.stop()
        if rc != 0:
            outcome.verdict.problems.append(f"the last daemon stopped with rc {rc}")
        outcome.faults += int(usage(info)["faults"]) + relay.mangled
        outcome.stuck = watch.stuck_seconds()
        outcome.verdict.problems += watch.worst()
        if relay.mangled < UNKNOWN_STATUS_ANSWERS:
            outcome.notes.append(
                f"unknown statuses: {relay.mangled} of {UNKNOWN_STATUS_ANSWERS} answers renamed"
            )
        judge(outcome.verdict, info, base, chaos, state.corpus)
        outcome.verdict.problems += [
            f"a daemon exited by itself {n} time(s): {last}" for last, n in state.crashes.items()
        ]
        if not settled:
            outcome.verdict.problems.append(f"spool did not settle in {options.settle_deadline} s")
        if not outcome.ok and mounted:
            shutil.copytree(base / "state", base / "state-at-end")  # the tmpfs goes at unmount
    outcome.notes.append(
        "clock: each daemon runs under support.skewclock; wall time jumped"
        f" {', then '.join(f'{o:+d} s' for o in options.clock_jumps) or 'never'} from real time"
        " (the daily reset is 6 h ahead: the spool is damaged in the first quota day, and the"
        " first jump starts the next)"
    )
    (base / "trace.txt").write_text("\n".join(chaos.trace) + "\n")
    if outcome.ok and not options.keep:
        shutil.rmtree(base, ignore_errors=True)
    else:
        outcome.notes.append(f"kept: {base} (trace.txt, daemon-*.log, ds/)")
    return outcome


def _parse(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m support.reliability", description=__doc__)
    parser.add_argument("--seed", type=int, default=Options.seed)
    parser.add_argument("--kills", type=int, default=Options.kills)
    parser.add_argument("--operations", type=int, default=Options.operations)
    parser.add_argument("--fault-rate", type=float, default=Options.fault_rate)
    parser.add_argument("--corpus-every", type=int, default=Options.corpus_every)
    parser.add_argument("--settle-deadline", type=float, default=Options.settle_deadline)
    parser.add_argument(
        "--clock-jumps",
        type=lambda text: tuple(int(x) for x in text.split(",") if x.strip()),
        default=Options.clock_jumps,
        help="wall-clock offsets in seconds, applied in turn; '' for none (the day a damaged"
        " spool counts as used then holds delivery until the real reset)",
    )
    parser.add_argument(
        "--stray-signals",
        type=lambda text: tuple(x.strip() for x in text.split(",") if x.strip()),
        default=Options.stray_signals,
        help="signals sent once each while running, e.g. SIGHUP,SIGTERM; '' for none",
    )
    parser.add_argument("--base", type=Path, default=None, help="run folder (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the run folder")
    args = parser.parse_args(argv)
    return Options(
        seed=args.seed,
        kills=args.kills,
        operations=args.operations,
        fault_rate=args.fault_rate,
        corpus_every=args.corpus_every,
        settle_deadline=args.settle_deadline,
        clock_jumps=args.clock_jumps,
        stray_signals=args.stray_signals,
        base=args.base,
        keep=args.keep,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = _parse(argv)
    outcome = run(options)
    for note in outcome.notes:
        print(note)
    for problem in outcome.verdict.all():
        print(problem)
    print(outcome.last_line())
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
