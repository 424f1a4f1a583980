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
import functools
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

__all__ = ["FleetOptions", "FleetReport", "main", "run_fleet"]

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


@dataclass
class FleetReport:
    daemons: int
    requests: int = 0
    files: int = 0
    refused: int = 0
    lost: int = 0
    forged: int = 0
    problems: list[str] = field(default_factory=list)
    throughput: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.refused == 0 and self.lost == 0

    def summary(self) -> str:
        isolation = "ok" if not any(p.startswith("isolation") for p in self.problems) else "BROKEN"
        return (
            f"fleet: {self.daemons} daemons, {self.requests} requests, {self.files} files, "
            f"refused {self.refused}, lost {self.lost}, isolation {isolation}"
        )


@dataclass
class _Daemon:
    user: str
    key: str = field(repr=False)
    base: Path
    process: subprocess.Popen[bytes] | None = None
    objects: dict[str, str] = field(default_factory=dict)  # sha256 -> filename
    sessions: set[str] = field(default_factory=set)  # timestamps
    forged_file: str | None = None

    @property
    def export(self) -> Path:
        return self.base / "export"

    @property
    def config(self) -> Path:
        return self.base / "exportsync.toml"


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


def _write_config(daemon: _Daemon, api_url: str) -> None:
    daemon.export.mkdir(parents=True, exist_ok=True)
    key_file = daemon.base / "api_key"
    key_file.write_text(daemon.key + "\n")
    key_file.chmod(0o600)
    doc: dict[str, dict[str, object]] = {
        "watch": {"dir": str(daemon.export)},
        "api": {
            "url": api_url,
            "api_key_file": str(key_file),
            "user_id": daemon.user,
            "timeout_seconds": 10,
            "batch_linger_seconds": 1.0,
        },
        "state": {"dir": str(daemon.base / "state")},
        "log": {"format": "json", "level": "info"},
    }
    lines = []
    for name, values in doc.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    daemon.config.write_text("\n".join(lines) + "\n")


def _exportsync(*args: str) -> list[str]:
    return [sys.executable, "-m", "exportsync", *args]


def _schedule(
    daemons: list[_Daemon], options: FleetOptions, rng: random.Random
) -> list[tuple[float, Callable[[], None]]]:
    """(seconds from start, write one export) for every daemon's every export, in time order."""
    steps: list[tuple[float, Callable[[], None]]] = []
    for index, daemon in enumerate(daemons):
        offset, interval = rng.uniform(0.5, 3.0), rng.uniform(2.0, 6.0)
        victim = daemons[(index + 1) % len(daemons)].user if len(daemons) > 1 else None
        for number in range(options.exports):
            files = [
                (
                    f"export-{number}-{part}.csv",
                    "".join(
                        f"{daemon.user},{number},{part},{row},{rng.randrange(10**9)}\n"
                        for row in range(rng.randint(1, 40))
                    ).encode(),
                )
                for part in range(rng.randint(1, 3))
            ]
            forged_by = victim if number == 0 else None
            write = functools.partial(_export, daemon, number, files, forged_by)
            steps.append((offset + number * interval, write))
    return sorted(steps, key=lambda step: step[0])


def _export(
    daemon: _Daemon, number: int, files: list[tuple[str, bytes]], victim: str | None
) -> None:
    for name, data in files:
        (daemon.export / name).write_bytes(data)
        daemon.objects[hashlib.sha256(data).hexdigest()] = name
    stamps = [f"2026-11-2{number % 8 + 1}T{hour:02d}:00:00+00:00" for hour in range(2)]
    sessions = [
        {"timestamp": stamp, "steps": 100 * number + hour} for hour, stamp in enumerate(stamps)
    ]
    (daemon.export / f"export-{number}.session.json").write_text(json.dumps(sessions))
    daemon.sessions.update(stamps)
    if victim is not None:
        daemon.forged_file = "forged.session.json"
        forged = {"user_id": victim, "timestamp": "2026-12-31T23:59:59+00:00", "steps": 1}
        (daemon.export / daemon.forged_file).write_text(json.dumps(forged))


def _aws(info: dict[str, Any], service: str) -> Any:
    import boto3  # noqa: PLC0415 -- heavy, and only needed once the devstack is up

    return boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 -- moto's dummy credential
        region_name=info["region"],
    ).client(cast(Any, service), endpoint_url=info["aws_endpoint"])


def _landed(info: dict[str, Any]) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """What is in the backend: {(user segment, sha256)} objects, {(user_id, timestamp)} items."""
    objects: set[tuple[str, str]] = set()
    for page in _aws(info, "s3").get_paginator("list_objects_v2").paginate(Bucket=info["bucket"]):
        for entry in page.get("Contents", []):
            parts = entry["Key"].split("/")
            objects.add((parts[1], parts[2]) if len(parts) == 4 else (entry["Key"], ""))
    items: set[tuple[str, str]] = set()
    for page in _aws(info, "dynamodb").get_paginator("scan").paginate(TableName=info["table"]):
        for item in page.get("Items", []):
            items.add((item["user_id"]["S"], item["timestamp"]["S"]))
    return objects, items


def _statuses(daemons: list[_Daemon]) -> dict[str, dict[str, Any]]:
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


def _check(
    report: FleetReport,
    daemons: list[_Daemon],
    landed: tuple[set[tuple[str, str]], set[tuple[str, str]]],
    statuses: dict[str, dict[str, Any]],
    by_key: dict[str, dict[str, int]],
) -> None:
    owners = {d.user: d for d in daemons}
    objects, items = landed
    for user, digest in sorted(objects):
        if user not in owners or digest not in owners[user].objects:
            report.problems.append(f"isolation: object uploads/{user}/{digest} is not {user}'s")
    for user, stamp in sorted(items):
        if user not in owners or stamp not in owners[user].sessions:
            report.problems.append(f"isolation: session {user}/{stamp} was not written by {user}")
    for d in daemons:
        report.lost += sum((d.user, digest) not in objects for digest in d.objects)
        report.lost += sum((d.user, stamp) not in items for stamp in d.sessions)
        failed = statuses.get(d.user, {}).get("failed", [])
        forged = [f for f in failed if Path(f["path"]).name == d.forged_file]
        report.lost += len(failed) - len(forged)
        if d.forged_file is not None:
            report.forged += 1
            if not (forged and "user_mismatch" in forged[0]["reason"]):
                report.problems.append(f"isolation: the session {d.user} forged was not refused")
        counts = by_key.get(d.user, {})
        report.refused += sum(
            counts.get(k, 0) for k in ("throttled", "quota_exceeded", "forbidden")
        )


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

    dynamodb = _aws(info, "dynamodb")
    deps = Dependencies(
        settings=Settings(bucket=info["bucket"], table=info["table"], users_table=users_table),
        objects=S3ObjectStore(_aws(info, "s3"), info["bucket"]),
        sessions=DynamoSessionStore(dynamodb, info["table"]),
        users=CachedUserDirectory(DynamoUserDirectory(dynamodb, users_table)),
    )
    keys = _aws(info, "apigateway").get_api_keys(includeValues=True)["items"]
    [key_id] = [k["id"] for k in keys if k.get("value") == info["api_key"]]
    identity = ApiIdentity(api_key_id=key_id, api_key=info["api_key"])
    rates = measure_routes(
        lambda event, ctx: handle(event, ctx, deps), identity, info["user_id"], count
    )
    return [
        f"handler per core (/batch not deployed; /session and /upload): {r.line()}" for r in rates
    ]


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
                _Daemon(u["user_id"], u["api_key"], options.workdir / f"daemon-{n:03d}")
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
    daemons: list[_Daemon],
    info: dict[str, Any],
    options: FleetOptions,
    *,
    rng: random.Random,
    report: FleetReport,
    out: IO[str],
) -> None:
    for d in daemons:
        _write_config(d, info["api_url"])
        with (d.base / "daemon.log").open("wb") as log:
            d.process = subprocess.Popen(  # noqa: S603 -- this interpreter running exportsync
                _exportsync("run", "--config", str(d.config)),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_env(),
            )
    try:
        started = time.monotonic()
        for at, write in _schedule(daemons, options, rng):
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
            objects, items = _landed(info)
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
    _check(report, daemons, _landed(info), statuses, usage.get("by_key", {}))


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
