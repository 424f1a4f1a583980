"""Run the devstack as a subprocess for a test and read back what landed in S3 and DynamoDB."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

__all__ = [
    "DevstackInfo",
    "DevstackStartError",
    "command_env",
    "dynamo_items",
    "s3_objects",
    "start_devstack",
    "usage",
    "wait_for",
]

_REPO = Path(__file__).resolve().parents[2]
_SOURCE_ROOTS = ("daemon", "lambda", "devstack", "tests")
READY_DEADLINE = 30.0
STOP_DEADLINE = 15.0


class DevstackStartError(RuntimeError):
    """The devstack exited or stayed silent instead of printing its ready line."""


@dataclass(frozen=True)
class DevstackInfo:
    """The ready line's fields, plus the process and where its stderr went."""

    api_url: str
    api_key: str = field(repr=False)
    user_id: str
    aws_endpoint: str
    region: str
    bucket: str
    table: str
    admin_url: str
    process: subprocess.Popen[str] = field(repr=False, compare=False)
    stderr_path: Path = field(repr=False, compare=False)
    # With --users N > 1: [{"user_id", "api_key"}, ...], the first being api_key/user_id.
    users: list[dict[str, str]] = field(default_factory=list, repr=False, compare=False)


def command_env() -> dict[str, str]:
    """The environment for the project's own commands in a test: source roots, dummy AWS keys."""
    env = dict(os.environ)
    roots = [str(_REPO / root) for root in _SOURCE_ROOTS]
    env["PYTHONPATH"] = os.pathsep.join([*roots, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    # Never let a developer's real AWS settings leak into the devstack or its handler.
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE"):
        env.pop(name, None)
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    return env


def _read_line(stream: Any, out: queue.Queue[str]) -> None:
    out.put(stream.readline())


def _stderr_tail(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-2000:]
    except OSError:
        return ""


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


@contextmanager
def start_devstack(tmp_path: Path, *extra_args: str) -> Iterator[DevstackInfo]:
    """`python -m exportsync_devstack --port 0 *extra_args`; yields once it printed its line.

    Stops it with SIGTERM on exit; stderr is kept in tmp_path/devstack-<n>.stderr.log.
    """
    tmp_path.mkdir(parents=True, exist_ok=True)
    n = len(list(tmp_path.glob("devstack-*.stderr.log")))
    stderr_path = tmp_path / f"devstack-{n}.stderr.log"
    command = [sys.executable, "-m", "exportsync_devstack", "--port", "0", *extra_args]
    with stderr_path.open("w", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=command_env(),
            cwd=tmp_path,
        )
    try:
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=_read_line, args=(process.stdout, lines), daemon=True)
        reader.start()
        try:
            line = lines.get(timeout=READY_DEADLINE)
        except queue.Empty:
            raise DevstackStartError(
                f"no ready line within {READY_DEADLINE}s; stderr:\n{_stderr_tail(stderr_path)}"
            ) from None
        if not line:
            process.wait(STOP_DEADLINE)
            raise DevstackStartError(
                f"devstack exited ({process.returncode}); stderr:\n{_stderr_tail(stderr_path)}"
            )
        fields = json.loads(line)
        yield DevstackInfo(**fields, process=process, stderr_path=stderr_path)
    finally:
        _stop(process)


def usage(info: DevstackInfo) -> dict[str, Any]:
    """GET {admin_url}/usage (never counted against the quota)."""
    with urllib.request.urlopen(f"{info.admin_url}/usage", timeout=10) as response:  # noqa: S310 -- loopback URL from the devstack
        result: dict[str, Any] = json.load(response)
    return result


def _session(info: DevstackInfo) -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name=info.region,
    )


def s3_objects(info: DevstackInfo) -> dict[str, bytes]:
    """Every object in the devstack's bucket, key -> bytes."""
    s3 = _session(info).client("s3", endpoint_url=info.aws_endpoint)
    objects: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=info.bucket):
        for entry in page.get("Contents", []):
            key = entry["Key"]
            objects[key] = s3.get_object(Bucket=info.bucket, Key=key)["Body"].read()
    return objects


def dynamo_items(info: DevstackInfo) -> list[dict[str, Any]]:
    """Every item in the sessions table as plain Python (numbers as Decimal), sorted by key."""
    table = _session(info).resource("dynamodb", endpoint_url=info.aws_endpoint).Table(info.table)
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {}
    while True:
        page = table.scan(**kwargs)
        items.extend(dict(item) for item in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return sorted(items, key=lambda item: (str(item.get("user_id")), str(item.get("timestamp"))))


def wait_for(predicate: Callable[[], bool], deadline: float = 10.0, interval: float = 0.02) -> bool:
    """Poll `predicate()` until true or `deadline` seconds pass; returns the last result."""
    end = time.monotonic() + deadline
    while True:
        if predicate():
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(interval)
