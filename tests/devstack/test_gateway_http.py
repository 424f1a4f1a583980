"""Every gateway answer of docs/api.md's table over real HTTP on 127.0.0.1 (stand-in handler)."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from structlog.testing import capture_logs

from exportsync_devstack.faults import Fault, FaultInjector
from support.gateway import API_KEY, KEYS, LiveGateway, gateway_factory

StartGateway = Callable[..., LiveGateway]
_MB = 1024 * 1024


@pytest.fixture
def start_gateway() -> Iterator[StartGateway]:
    with gateway_factory() as start:
        yield start


def _post(live: LiveGateway, path: str = "/session", key: str | None = API_KEY, **kw: Any) -> Any:
    headers = dict(kw.pop("headers", {}))
    if key is not None:
        headers["x-api-key"] = key
    kw.setdefault("json", {"user_id": "u", "timestamp": "2026-01-01T00:00:00Z"})
    return requests.post(live.url + path, headers=headers, timeout=10, **kw)


def _usage(live: LiveGateway) -> dict[str, Any]:
    response = requests.get(live.admin_url + "/usage", timeout=10)
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def test_accepted_request_reaches_the_handler_and_its_answer_comes_back(
    start_gateway: StartGateway,
) -> None:
    live = start_gateway()
    response = _post(live)
    assert response.status_code == 200
    assert response.json() == {"route": "POST /session"}
    assert response.headers["Content-Type"] == "application/json"
    [event] = live.handler.events
    assert json.loads(event["body"]) == {"user_id": "u", "timestamp": "2026-01-01T00:00:00Z"}
    assert event["requestContext"]["identity"]["apiKeyId"] == "key-id-1"


@pytest.mark.parametrize("key", [None, "", "wrong-key"])
def test_missing_or_unknown_key_is_403_forbidden(
    start_gateway: StartGateway, key: str | None
) -> None:
    live = start_gateway()
    response = _post(live, key=key)
    assert response.status_code == 403
    assert response.json() == {"message": "Forbidden"}
    assert live.handler.events == []
    assert _usage(live)["quota"]["used"] == 0


def test_path_outside_the_stage_is_403_missing_authentication_token(
    start_gateway: StartGateway,
) -> None:
    live = start_gateway()
    root = live.url.removesuffix("/devstack")
    response = requests.post(root + "/session", headers={"x-api-key": API_KEY}, timeout=10)
    assert response.status_code == 403
    assert response.json() == {"message": "Missing Authentication Token"}


def test_second_request_inside_a_second_is_429_too_many_requests(
    start_gateway: StartGateway,
) -> None:
    live = start_gateway(rate=1, burst=1)
    assert _post(live).status_code == 200
    throttled = _post(live)
    assert throttled.status_code == 429
    assert throttled.json() == {"message": "Too Many Requests"}
    assert "Retry-After" not in throttled.headers
    live.clock.advance(1.0)
    assert _post(live).status_code == 200
    assert len(live.handler.events) == 2
    assert _usage(live)["quota"]["used"] == 2  # the throttled one cost no quota


def test_past_the_daily_quota_is_429_limit_exceeded(start_gateway: StartGateway) -> None:
    live = start_gateway(rate=0, quota=2)
    assert [_post(live).status_code for _ in range(2)] == [200, 200]
    over = _post(live)
    assert over.status_code == 429
    assert over.json() == {"message": "Limit Exceeded"}
    assert "Retry-After" not in over.headers
    live.clock.advance(24 * 3600)  # the next UTC day
    assert _post(live).status_code == 200


def test_key_is_checked_before_throttle_and_throttle_before_quota(
    start_gateway: StartGateway,
) -> None:
    live = start_gateway(rate=1, burst=1, quota=1)
    assert _post(live).status_code == 200
    assert _post(live, key="wrong").status_code == 403
    assert _post(live).json() == {"message": "Too Many Requests"}
    live.clock.advance(1.0)
    assert _post(live).json() == {"message": "Limit Exceeded"}


def test_body_over_10_mb_is_413_before_the_handler(start_gateway: StartGateway) -> None:
    live = start_gateway(rate=0)
    response = _post(live, "/upload", json=None, data=b"x" * (12 * _MB))
    assert response.status_code == 413
    assert response.json() == {"message": "Request Too Long"}
    assert live.handler.events == []
    assert _usage(live)["quota"]["used"] == 0


def test_chunked_body_over_10_mb_is_413(start_gateway: StartGateway) -> None:
    live = start_gateway(rate=0)

    def chunks() -> Iterator[bytes]:
        for _ in range(12):
            yield b"y" * _MB

    response = _post(live, "/upload", json=None, data=chunks())
    assert response.status_code == 413
    assert response.json() == {"message": "Request Too Long"}


def test_chunked_body_within_the_limit_reaches_the_handler(start_gateway: StartGateway) -> None:
    live = start_gateway(rate=0)
    parts = [b"a" * 1000, b"b" * 70_000, b"c"]
    response = _post(
        live,
        "/upload",
        json=None,
        data=iter(parts),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 200
    [event] = live.handler.events
    assert base64.b64decode(event["body"]) == b"".join(parts)


def test_expect_100_continue_gets_413_without_sending_the_body(
    start_gateway: StartGateway,
) -> None:
    live = start_gateway(rate=0)
    url = urlsplit(live.url)
    assert url.hostname is not None
    assert url.port is not None
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(
            (
                f"POST /devstack/upload HTTP/1.1\r\nHost: {url.netloc}\r\nx-api-key: {API_KEY}\r\n"
                f"Content-Length: {12 * _MB}\r\nExpect: 100-continue\r\n\r\n"
            ).encode()
        )
        answer = sock.makefile("rb").read()
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert answer.endswith(b'{"message": "Request Too Long"}')


def test_lambda_event_over_6_mb_is_500_internal_server_error(start_gateway: StartGateway) -> None:
    # 5 MB of binary becomes ~6.7 MB of base64 in the event: over Lambda's Invoke cap.
    live = start_gateway(rate=0)
    response = _post(
        live,
        "/upload",
        json=None,
        data=b"\x00" * (5 * _MB),
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert response.status_code == 500
    assert response.json() == {"message": "Internal server error"}
    assert live.handler.events == []
    assert _usage(live)["quota"]["used"] == 1  # it passed the usage plan


def _raise(event: dict[str, Any]) -> Any:
    raise RuntimeError("boom")


@pytest.mark.parametrize("reply", [_raise, lambda e: {"body": "no status"}, lambda e: "text"])
def test_function_error_or_bad_response_is_502(
    start_gateway: StartGateway, reply: Callable[[dict[str, Any]], Any]
) -> None:
    live = start_gateway()
    live.handler.reply = reply
    response = _post(live)
    assert response.status_code == 502
    assert response.json() == {"message": "Internal server error"}


def test_function_answer_is_passed_through(start_gateway: StartGateway) -> None:
    live = start_gateway()
    live.handler.reply = lambda event: {
        "statusCode": 422,
        "headers": {"Content-Type": "application/json", "X-Extra": "1"},
        "body": base64.b64encode(b'{"error": {"code": "x"}}').decode(),
        "isBase64Encoded": True,
    }
    response = _post(live)
    assert response.status_code == 422
    assert response.headers["X-Extra"] == "1"
    assert response.json() == {"error": {"code": "x"}}


def test_usage_counts_every_outcome_and_is_never_counted_itself(
    start_gateway: StartGateway,
) -> None:
    live = start_gateway(rate=1, burst=1, quota=2)
    _post(live)  # accepted
    _post(live, key=None)  # forbidden
    _post(live)  # throttled
    live.clock.advance(1)
    _post(live, "/upload")  # accepted
    live.clock.advance(1)
    _post(live)  # quota exceeded
    _post(live, "/upload", json=None, data=b"z" * (11 * _MB))  # too large
    for _ in range(3):
        _usage(live)
    usage = _usage(live)
    assert {k: usage[k] for k in ("requests", "accepted", "throttled", "quota_exceeded")} == {
        "requests": 6,
        "accepted": 2,
        "throttled": 1,
        "quota_exceeded": 1,
    }
    assert (usage["faults"], usage["forbidden"], usage["too_large"]) == (0, 1, 1)
    assert usage["by_route"]["POST /session"]["requests"] == 4
    assert usage["by_route"]["POST /upload"]["accepted"] == 1
    assert usage["by_route"]["POST /upload"]["too_large"] == 1
    assert usage["used"] == 2
    assert usage["quota"]["limit"] == 2


def _outcome(live: LiveGateway) -> str:
    try:
        return str(_post(live).status_code)
    except requests.ConnectionError:
        return "dropped"


def test_faults_are_reproducible_by_seed(start_gateway: StartGateway) -> None:
    runs = []
    for _ in range(2):
        live = start_gateway(rate=0, quota=0, fault_rate=0.5, seed=11, slow_seconds=0.01)
        runs.append([_outcome(live) for _ in range(30)])
        usage = _usage(live)
        failed = len([outcome for outcome in runs[-1] if outcome != "200"])
        assert usage["faults"] == failed + usage["faults_by_kind"].get("slow", 0)
        assert usage["accepted"] == 30
    assert runs[0] == runs[1]
    assert {"502", "503", "504", "dropped"} <= set(runs[0])
    assert "200" in runs[0]


@pytest.mark.parametrize(
    ("fault", "status", "message"),
    [
        (Fault.BAD_GATEWAY, 502, "Internal server error"),
        (Fault.BAD_GATEWAY_AFTER, 502, "Internal server error"),
        (Fault.UNAVAILABLE, 503, "Service Unavailable"),
        (Fault.TIMEOUT_AFTER, 504, "Endpoint request timed out"),
    ],
)
def test_each_fault_answers_like_aws_and_runs_the_handler_only_after(
    start_gateway: StartGateway, fault: Fault, status: int, message: str
) -> None:
    live = start_gateway(rate=0, faults=FaultInjector(1.0, 0, kinds=[fault]))
    response = _post(live)
    assert response.status_code == status
    assert response.json() == {"message": message}
    assert len(live.handler.events) == (1 if fault.handler_runs else 0)
    assert _usage(live)["quota"]["used"] == 1  # faults hit accepted, counted requests


@pytest.mark.parametrize("fault", [Fault.DROP, Fault.DROP_AFTER])
def test_dropped_connection_gives_no_answer(start_gateway: StartGateway, fault: Fault) -> None:
    live = start_gateway(rate=0, faults=FaultInjector(1.0, 0, kinds=[fault]))
    with pytest.raises(requests.ConnectionError):
        _post(live)
    assert len(live.handler.events) == (1 if fault.handler_runs else 0)


def test_slow_fault_still_answers_correctly(start_gateway: StartGateway) -> None:
    live = start_gateway(rate=0, slow_seconds=0.05, faults=FaultInjector(1.0, 0, [Fault.SLOW]))
    response = _post(live)
    assert response.status_code == 200
    assert response.elapsed.total_seconds() >= 0.05
    assert _usage(live)["faults_by_kind"] == {"slow": 1}


def test_the_api_key_never_reaches_the_logs(start_gateway: StartGateway) -> None:
    live = start_gateway()
    with capture_logs() as logs:
        _post(live)
        _post(live)
        _post(live, key="wrong")
    assert logs
    assert API_KEY not in repr(logs)
    assert API_KEY not in repr(live.gateway)


def test_each_key_has_its_own_plan_and_by_key_counters(start_gateway: StartGateway) -> None:
    """One key's spent day and burst never touch another key's (API Gateway meters per key)."""
    live = start_gateway(rate=1, burst=1, quota=1)
    alice, bob = KEYS[0], KEYS[1]
    assert _post(live, key=alice.value).status_code == 200
    assert _post(live, key=alice.value).json() == {"message": "Too Many Requests"}
    assert _post(live, key=bob.value).status_code == 200  # bob's bucket is full
    live.clock.advance(1.0)
    assert _post(live, key=alice.value).json() == {"message": "Limit Exceeded"}
    assert _post(live, key=bob.value).json() == {"message": "Limit Exceeded"}
    ids = [event["requestContext"]["identity"]["apiKeyId"] for event in live.handler.events]
    assert ids == [alice.key_id, bob.key_id]
    by_key = _usage(live)["by_key"]
    assert {user: (c["requests"], c["accepted"]) for user, c in by_key.items()} == {
        "alice": (3, 1),
        "bob": (2, 1),
    }
    assert (by_key["alice"]["throttled"], by_key["alice"]["quota_exceeded"]) == (1, 1)
    assert (by_key["bob"]["throttled"], by_key["bob"]["quota_exceeded"]) == (0, 1)
    assert _usage(live)["quota"]["used"] == 1  # the top-level day is the first key's


def test_a_disabled_key_is_403_forbidden_and_never_reaches_the_handler(
    start_gateway: StartGateway,
) -> None:
    live = start_gateway()
    disabled = KEYS[2]
    assert not disabled.enabled
    response = _post(live, key=disabled.value)
    assert (response.status_code, response.json()) == (403, {"message": "Forbidden"})
    assert live.handler.events == []
    assert _usage(live)["by_key"]["carol"]["forbidden"] == 1
