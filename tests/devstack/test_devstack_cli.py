"""`python -m exportsync_devstack` as a subprocess with the real Lambda handler and moto."""

from __future__ import annotations

import hashlib
import json
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from exportsync_devstack.cli import parse_args
from exportsync_devstack.faults import Fault
from support.devstack import DevstackInfo, dynamo_items, s3_objects, start_devstack, usage

_FIELDS = {
    "api_url",
    "api_key",
    "user_id",
    "aws_endpoint",
    "region",
    "bucket",
    "table",
    "admin_url",
}


def _post(info: DevstackInfo, path: str, **kw: Any) -> requests.Response:
    headers = {"x-api-key": info.api_key, **kw.pop("headers", {})}
    return requests.post(info.api_url + path, headers=headers, timeout=30, **kw)


def test_parse_args_defaults_match_the_contract() -> None:
    options = parse_args([])
    assert (options.host, options.port, options.rate, options.burst) == ("127.0.0.1", 0, 1.0, 1)
    assert (options.quota, options.fault_rate, options.seed, options.state_dir) == (
        10,
        0.0,
        None,
        None,
    )
    options = parse_args(["--rate", "0", "--burst", "0", "--seed", "4", "--state-dir", "s"])
    assert (options.rate, options.burst, options.seed, options.state_dir) == (0, 0, 4, Path("s"))
    options = parse_args(["--fault-kinds", "drop, timeout_after"])
    assert options.fault_kinds == (Fault.DROP, Fault.TIMEOUT_AFTER)


@pytest.mark.parametrize(
    "argv",
    [
        ["--burst", "0"],
        ["--fault-rate", "2"],
        ["--quota", "-1"],
        ["--port", "x"],
        ["--fault-kinds", "nope"],
    ],
)
def test_parse_args_rejects_bad_values(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_prints_one_ready_line_and_stops_cleanly_on_a_signal(tmp_path: Path, signum: int) -> None:
    with start_devstack(tmp_path) as info:
        assert info.api_url.startswith("http://127.0.0.1:")
        assert info.api_url.endswith("/devstack")
        assert info.aws_endpoint.startswith("http://127.0.0.1:")
        assert info.admin_url.startswith("http://127.0.0.1:")
        assert (info.region, info.user_id) == ("us-east-1", "devstack-user")
        assert len(info.api_key) >= 20
        assert usage(info)["requests"] == 0
        info.process.send_signal(signum)
        assert info.process.wait(15) == 0
        assert info.process.stdout is not None
        assert info.process.stdout.read() == ""  # nothing after the ready line
    stderr = info.stderr_path.read_text(encoding="utf-8")
    assert "devstack_stopping" in stderr
    assert info.api_key not in stderr


def test_ready_line_has_exactly_the_contract_fields(tmp_path: Path) -> None:
    with start_devstack(tmp_path, "--user-id", "alice") as info:
        fields = {name for name in vars(info) if name not in ("process", "stderr_path", "users")}
        assert fields == _FIELDS
        assert info.users == []  # `users` joins the line only with --users N > 1
        assert info.user_id == "alice"


def test_default_usage_plan_over_the_real_handler(devstack: DevstackInfo) -> None:
    """No key -> 403; then two requests at once -> one of them is 429.

    Both leave together, so the 429 does not depend on how long the first one's handler takes
    (its first call builds the boto3 clients, seconds on a busy runner).
    """
    missing = requests.get(devstack.api_url + "/session", timeout=30)
    assert (missing.status_code, missing.json()) == (403, {"message": "Forbidden"})
    start = threading.Barrier(2)

    def send() -> requests.Response:
        start.wait(timeout=30)
        return _post(devstack, "/session", json={"sessions": []})

    with ThreadPoolExecutor(2) as pool:
        answers = [f.result() for f in [pool.submit(send), pool.submit(send)]]
    throttled = [a for a in answers if a.status_code == 429]
    assert len(throttled) == 1
    assert throttled[0].json() == {"message": "Too Many Requests"}
    counts = usage(devstack)
    assert (counts["forbidden"], counts["accepted"], counts["throttled"]) == (1, 1, 1)


def test_upload_and_session_land_in_moto_through_the_real_lambda(tmp_path: Path) -> None:
    csv = b"a,b\r\n1,2\r\n\x00binary-ok\r\n"
    digest = hashlib.sha256(csv).hexdigest()
    session = {"user_id": "devstack-user", "timestamp": "2026-03-01T10:00:00Z", "score": 0.1}
    with start_devstack(tmp_path, "--rate", "0") as info:
        stored = _post(info, "/upload", files={"file": ("export.csv", csv, "text/csv")})
        assert stored.status_code == 200, stored.text
        [result] = stored.json()["results"]
        assert result["status"] == "stored"
        assert result["key"] == f"uploads/devstack-user/{digest}/export.csv"
        again = _post(info, "/upload", files={"file": ("export.csv", csv, "text/csv")})
        assert again.json()["results"][0]["status"] == "duplicate"
        saved = _post(info, "/session", json=session)
        assert saved.status_code == 200, saved.text
        assert saved.json()["results"][0]["status"] == "stored"
        assert s3_objects(info) == {result["key"]: csv}
        [item] = dynamo_items(info)
        assert item["score"] == Decimal("0.1")
        assert (item["user_id"], item["timestamp"]) == ("devstack-user", "2026-03-01T10:00:00Z")
        assert usage(info)["by_route"]["POST /upload"]["accepted"] == 2


def test_state_dir_keeps_the_api_key_and_the_days_quota(tmp_path: Path) -> None:
    args = ("--state-dir", str(tmp_path / "state"), "--quota", "1", "--rate", "0")
    with start_devstack(tmp_path, *args) as first:
        assert _post(first, "/session", json={"sessions": []}).status_code != 429
    with start_devstack(tmp_path, *args) as second:
        assert second.api_key == first.api_key
        over = _post(second, "/session", json={"sessions": []})
        assert (over.status_code, over.json()) == (429, {"message": "Limit Exceeded"})
        assert usage(second)["used"] == 1
    assert json.loads((tmp_path / "state" / "quota.json").read_text())["used"] == 1


def _outcomes(tmp_path: Path) -> list[str]:
    args = ("--rate", "0", "--quota", "0", "--fault-rate", "0.5", "--seed", "5")
    outcomes = []
    with start_devstack(tmp_path, *args, "--slow-seconds", "0") as info:
        for _ in range(16):
            try:
                outcomes.append(str(_post(info, "/session", json={"sessions": []}).status_code))
            except requests.ConnectionError:
                outcomes.append("dropped")
        assert usage(info)["faults"] >= len([o for o in outcomes if o in ("502", "503", "504")])
    return outcomes


def test_fault_rate_and_seed_reproduce_the_same_failures(tmp_path: Path) -> None:
    first = _outcomes(tmp_path / "a")
    assert first == _outcomes(tmp_path / "b")
    assert len(set(first)) > 1  # some failed, some did not
