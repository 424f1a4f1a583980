"""`make fleet`: N real `exportsync run` daemons, each with its own key and folder, on one devstack.

One devstack with `--users N` and faults on; each daemon exports on its own seeded schedule (a few
CSVs and a session file per export) and also drops one session forged in the next user's name.
Once everything settled the run checks:

- isolation: every object under its owner's `uploads/{user}/`, every item under its owner's
  user_id, every forged session refused (the daemon lists it failed with `user_mismatch`);
- the plan: no daemon's key was throttled, over its day or forbidden (`by_key`);
- nothing lost: every file's content in S3, every session in DynamoDB, no other failure.

Then, in the same run, the handler's throughput per core (see throughput.py). The last line is
`fleet: N daemons, R requests, F files, refused 0, lost 0, isolation ok`; exit 0 when all holds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from exportsync_wire import routes

from .fleet_checks import FleetReport, aws_client, check, landed
from .fleet_plan import FleetDaemon, schedule, write_config

__all__ = ["FleetOptions", "main", "run_fleet"]

_DEVSTACK_READY = 60.0


@dataclass(frozen=True)
class FleetOptions:
    workdir: Path
    daemons: int = 20
    exports: int = 3
    seed: int = 20261129
    fault_rate: float = 0.05
    deadline: float = 240.0  # seconds for everything to settle once the last export is written
    measure_requests: int = 200  # per throughput route (0: skip the measurement)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXPORTSYNC_", "AWS_"))}
    env["AWS_ACCESS_KEY_ID"] = "testing"
    env["AWS_SECRET_ACCESS_KEY"] = "testing"  # noqa: S105 -- moto's dummy credential
    return env


def _start_devstack(options: FleetOptions, log: IO[str]) -> tuple[subprocess.Popen[str], Any]:
    command = [
        *(sys.executable, "-m", "exportsync_devstack", "--port", "0"),
        *("--users", str(options.daemons), "--seed", str(options.seed)),
        *("--fault-rate", str(options.fault_rate), "--slow-seconds", "1"),
    ]
    process = subprocess.Popen(  # noqa: S603 -- this interpreter running the devstack
        command, stdout=subprocess.PIPE, stderr=log, text=True, env=_env()
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(_DEVSTACK_READY)
        raise RuntimeError("the devstack did not start; see devstack.log")
    return process, json.loads(line)


def _exportsync(*args: str) -> list[str]:
    return [sys.executable, "-m", "exportsync", *args]


def _statuses(daemons: list[FleetDaemon]) -> dict[str, dict[str, Any]]:
    """`exportsync status --json` of every daemon, run side by side."""
    running = {
        d.user: subprocess.Popen(  # noqa: S603 -- this interpreter running exportsync
            _exportsync("status", "--json", "--config", str(d.config)),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_env(),
        )
        for d in daemons
    }
    out: dict[str, dict[str, Any]] = {}
    for user, process in running.items():
        stdout, _ = process.communicate(timeout=60)
        out[user] = json.loads(stdout) if process.returncode == 0 else {}
    return out


def _settled(statuses: dict[str, dict[str, Any]]) -> bool:
    return all(
        s.get("counts", {}).get("pending", 1) == 0 and s.get("counts", {}).get("sending", 1) == 0
        for s in statuses.values()
    )


def _poll(predicate: Callable[[], bool], deadline: float, interval: float = 1.0) -> bool:
    end = time.monotonic() + deadline
    while not predicate():
        if time.monotonic() >= end:
            return False
        time.sleep(interval)
    return True


def _measure(info: dict[str, Any], users_table: str, count: int) -> list[str]:
    # The function's JSON logs go where Lambda's would, not onto this report: its logger keeps
    # the stdout it finds at import, so import (and measure) with stdout pointed at /dev/null.
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        return _measure_quietly(info, users_table, count)


def _measure_quietly(info: dict[str, Any], users_table: str, count: int) -> list[str]:
    from exportsync_api.app import Dependencies, handle  # noqa: PLC0415
    from exportsync_api.registry import CachedUserDirectory, DynamoUserDirectory  # noqa: PLC0415
    from exportsync_api.settings import Settings  # noqa: PLC0415
    from exportsync_api.stores import DynamoSessionStore, S3ObjectStore  # noqa: PLC0415

    from .events import ApiIdentity  # noqa: PLC0415
    from .throughput import measure_routes  # noqa: PLC0415

    dynamodb = aws_client(info, "dynamodb")
    deps = Dependencies(
        settings=Settings(bucket=info["bucket"], table=info["table"], users_table=users_table),
        objects=S3ObjectStore(aws_client(info, "s3"), info["bucket"]),
        sessions=DynamoSessionStore(dynamodb, info["table"]),
        users=CachedUserDirectory(DynamoUserDirectory(dynamodb, users_table)),
    )
    keys = aws_client(info, "apigateway").get_api_keys(includeValues=True)["items"]
    [key_id] = [k["id"] for k in keys if k.get("value") == info["api_key"]]
    identity = ApiIdentity(api_key_id=key_id, api_key=info["api_key"])
    rates = measure_routes(
        lambda event, ctx: handle(event, ctx, deps), identity, info["user_id"], count
    )
    lines = [f"handler per core: {r.line()}" for r in rates]
    if not any(r.label.startswith(routes.BATCH) for r in rates):
        lines.insert(0, "handler per core: /batch is not served by this function; measured:")
    return lines


def run_fleet(options: FleetOptions, out: IO[str]) -> FleetReport:
    """The whole simulation; progress and figures on `out`, the summary line last."""
    rng = random.Random(options.seed)  # noqa: S311 -- a reproducible schedule, not crypto
    options.workdir.mkdir(parents=True, exist_ok=True)
    report = FleetReport(options.daemons)
    with (options.workdir / "devstack.log").open("w") as log:
        devstack, info = _start_devstack(options, log)
        try:
            users = info.get("users") or [{"user_id": info["user_id"], "api_key": info["api_key"]}]
            daemons = [
                FleetDaemon(u["user_id"], u["api_key"], options.workdir / f"daemon-{n:03d}")
                for n, u in enumerate(users)
            ]
            _run_daemons(daemons, info, options, rng=rng, report=report, out=out)
            if options.measure_requests:
                report.throughput = _measure(info, "exportsync-users", options.measure_requests)
        finally:
            devstack.send_signal(signal.SIGTERM)
            devstack.wait(30)
            if devstack.stdout is not None:
                devstack.stdout.close()
    for line in [*report.throughput, *report.problems[:20], report.summary()]:
        out.write(line + "\n")
    out.flush()
    return report


def _run_daemons(
    daemons: list[FleetDaemon],
    info: dict[str, Any],
    options: FleetOptions,
    *,
    rng: random.Random,
    report: FleetReport,
    out: IO[str],
) -> None:
    for d in daemons:
        write_config(d, info["api_url"])
        with (d.base / "daemon.log").open("wb") as log:
            d.process = subprocess.Popen(  # noqa: S603 -- this interpreter running exportsync
                _exportsync("run", "--config", str(d.config)),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_env(),
            )
    try:
        started = time.monotonic()
        for at, write in schedule(daemons, options.exports, rng):
            time.sleep(max(0.0, started + at - time.monotonic()))  # the exporting apps' pace
            write()
        report.files = sum(len(list(d.export.iterdir())) for d in daemons)
        out.write(f"fleet: {report.files} files written, waiting for delivery\n")
        out.flush()
        expected = (
            {(d.user, digest) for d in daemons for digest in d.objects},
            {(d.user, stamp) for d in daemons for stamp in d.sessions},
        )

        def delivered() -> bool:
            objects, items = landed(info)
            return expected[0] <= objects and expected[1] <= items

        if not _poll(delivered, options.deadline):
            report.problems.append("deadline: not everything arrived in time")
        statuses: dict[str, dict[str, Any]] = {}

        def settled() -> bool:
            statuses.update(_statuses(daemons))
            return _settled(statuses)

        if not _poll(settled, options.deadline / 4, interval=2.0):
            report.problems.append("deadline: some spools still hold pending items")
    finally:
        for d in daemons:
            if d.process is not None and d.process.poll() is None:
                d.process.send_signal(signal.SIGTERM)
        for d in daemons:
            if d.process is not None:
                d.process.wait(30)
    with _urlopen(info["admin_url"] + "/usage") as response:
        usage = json.load(response)
    report.requests = usage["requests"]
    check(report, daemons, landed(info), statuses, usage.get("by_key", {}))


def _urlopen(url: str) -> Any:
    import urllib.request  # noqa: PLC0415

    return urllib.request.urlopen(url, timeout=10)  # noqa: S310 -- the devstack's loopback URL


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m exportsync_devstack.fleet")
    parser.add_argument("--daemons", type=int, default=20)
    parser.add_argument("--exports", type=int, default=3, help="exports per daemon")
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--deadline", type=float, default=240.0)
    parser.add_argument("--measure-requests", type=int, default=200)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    args = parser.parse_args(argv)
    if args.daemons < 1 or args.exports < 1:
        parser.error("--daemons and --exports must be >= 1")
    with tempfile.TemporaryDirectory(prefix="exportsync-fleet-") as tmp:
        options = FleetOptions(
            workdir=args.workdir or Path(tmp),
            daemons=args.daemons,
            exports=args.exports,
            seed=args.seed,
            fault_rate=args.fault_rate,
            deadline=args.deadline,
            measure_requests=args.measure_requests,
        )
        report = run_fleet(options, sys.stdout)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
