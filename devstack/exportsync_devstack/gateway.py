"""API Gateway's request path, minus HTTP: size, key, throttle, quota, then the Lambda proxy call.

Where AWS documents the answer, the devstack gives the same one:
- 403 {"message": "Forbidden"} for a missing or unknown key (InvalidKeyParameter), checked before
  the usage plan: "If there is a match, API Gateway throttles the requests based on the plan's
  request limit and quota" (API Gateway developer guide, "Choose an API key source").
- 429 "Too Many Requests" (rate/burst) before 429 "Limit Exceeded" (quota); a throttled request
  does not use quota.
- An Invoke payload over Lambda's 6 MB synchronous cap is rejected by the Lambda API, and "If the
  Lambda API rejects the invocation request, API Gateway returns a 500 error code ... If the
  function runs but returns an error, or returns a response in the wrong format, API Gateway
  returns a 502 ... the body ... is {"message": "Internal server error"}" (Lambda developer guide,
  "Handling Lambda errors with an API Gateway API").
Choice, not documented by AWS: the 10 MB body check comes first, from Content-Length, so an
oversized body is refused before it is read and costs no quota.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from exportsync_wire import gateway, limits
from exportsync_wire.gateway import GatewayError

from .apikeys import GatewayKey, KeyDirectory
from .clock import Clock, SystemClock
from .counters import Outcome, UsageCounters
from .events import (
    ApiIdentity,
    IncomingRequest,
    MalformedProxyResponse,
    build_rest_event,
    event_size,
    parse_proxy_response,
)
from .faults import Fault, FaultInjector
from .memory import count_handler_cpu
from .plans import PlanLedger

__all__ = [
    "Gateway",
    "GatewayReply",
    "Handler",
]

Handler = Callable[[dict[str, Any], Any], Any]

_log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class GatewayReply:
    """What the HTTP layer sends: an answer, a late answer (`delay`), or nothing (`drop`)."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    drop: bool = False
    delay: float = 0.0


def _gateway_error(error: GatewayError, request_id: str) -> GatewayReply:
    return GatewayReply(
        error.status,
        (
            ("Content-Type", "application/json"),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", error.error_type),
        ),
        json.dumps({"message": error.message}).encode("utf-8"),
    )


_FAULT_REPLIES: dict[Fault, GatewayError] = {
    Fault.BAD_GATEWAY: gateway.BAD_GATEWAY,
    Fault.BAD_GATEWAY_AFTER: gateway.BAD_GATEWAY,
    Fault.UNAVAILABLE: gateway.UNAVAILABLE,
    Fault.TIMEOUT_AFTER: gateway.TIMED_OUT,
}


class Gateway:
    """One API stage with one usage plan (metered per key) in front of one Lambda handler."""

    def __init__(
        self,
        *,
        handler: Handler,
        keys: KeyDirectory,
        plans: PlanLedger,
        faults: FaultInjector | None = None,
        counters: UsageCounters | None = None,
        clock: Clock | None = None,
        stage: str = "devstack",
        slow_seconds: float = 3.0,
        max_body: int = limits.GATEWAY_BODY_BYTES,
        max_event: int = limits.LAMBDA_EVENT_BYTES,
    ) -> None:
        self._handler = handler
        self._keys = keys
        self._plans = plans
        self._faults = faults
        self.counters = counters if counters is not None else UsageCounters()
        self._clock = clock if clock is not None else SystemClock()
        self.stage = stage
        self._slow_seconds = slow_seconds
        self.max_body = max_body
        self._max_event = max_event
        # Like one warm Lambda container: one invocation at a time.
        self._invoke_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Gateway(stage={self.stage!r})"

    def _split_stage(self, raw_path: str) -> str | None:
        prefix = f"/{self.stage}"
        if raw_path == prefix:
            return "/"
        if raw_path.startswith(prefix + "/"):
            return raw_path[len(prefix) :]
        return None

    def route_of(self, method: str, raw_path: str) -> str:
        path = self._split_stage(raw_path)
        return f"{method} {path if path is not None else raw_path}"

    def _finish(
        self,
        route: str,
        outcome: Outcome,
        reply: GatewayReply,
        rid: str,
        user: str | None = None,
    ) -> GatewayReply:
        self.counters.record(route, outcome, user)
        _log.info("gateway_request", route=route, outcome=outcome, status=reply.status, rid=rid)
        return reply

    def reject_too_large(self, method: str, raw_path: str) -> GatewayReply:
        """413 for a body over the limit; the HTTP layer calls it before reading the body."""
        rid = str(uuid.uuid4())
        reply = _gateway_error(gateway.REQUEST_TOO_LONG, rid)
        return self._finish(self.route_of(method, raw_path), "too_large", reply, rid)

    def usage(self) -> dict[str, Any]:
        return self.counters.snapshot(self._plans.primary_snapshot())

    def arrival(self) -> float:
        """Now on the plan's clock: the HTTP layer stamps a request with it on arrival."""
        return self._clock.monotonic()

    def handle(
        self,
        method: str,
        raw_path: str,
        *,
        query: str = "",
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        source_ip: str = "127.0.0.1",
        arrived: float | None = None,
    ) -> GatewayReply:
        """Run one request through the gateway's checks and, when accepted, the handler.

        `arrived` (from arrival()) is when its headers came in; the throttle meters from then.
        """
        route = self.route_of(method, raw_path)
        if len(body) > self.max_body:
            return self.reject_too_large(method, raw_path)
        rid = str(uuid.uuid4())
        path = self._split_stage(raw_path)
        if path is None:
            # What execute-api answers for a path outside any deployed stage/resource.
            reply = _gateway_error(gateway.NO_ROUTE, rid)
            return self._finish(route, "forbidden", reply, rid)
        request = IncomingRequest(method, path, query, tuple(headers), body, source_ip)
        key = self._keys.find(request.header("x-api-key") or "")
        if key is None or not key.enabled:
            # A disabled key is refused like an unknown one, as API Gateway does.
            reply = _gateway_error(gateway.FORBIDDEN, rid)
            return self._finish(route, "forbidden", reply, rid, key.user if key else None)
        admission = self._plans.admit(key, arrived)
        if admission == "throttled":
            reply = _gateway_error(gateway.TOO_MANY_REQUESTS, rid)
            return self._finish(route, "throttled", reply, rid, key.user)
        if admission == "quota_exceeded":
            reply = _gateway_error(gateway.LIMIT_EXCEEDED, rid)
            return self._finish(route, "quota_exceeded", reply, rid, key.user)
        self.counters.record(route, "accepted", key.user)
        reply = self._accepted(route, request, rid, key)
        _log.info("gateway_request", route=route, outcome="accepted", status=reply.status, rid=rid)
        return reply

    def _accepted(
        self, route: str, request: IncomingRequest, rid: str, key: GatewayKey
    ) -> GatewayReply:
        fault = self._faults.draw() if self._faults is not None else None
        if fault is not None:
            self.counters.record_fault(route, fault.value, key.user)
            _log.info("fault_injected", route=route, fault=fault.value, rid=rid)
        if fault is not None and not fault.handler_runs:
            return self._fault_reply(fault, rid)
        reply = self._invoke(request, rid, key)
        if fault is None:
            return reply
        if fault is Fault.SLOW:
            return GatewayReply(reply.status, reply.headers, reply.body, delay=self._slow_seconds)
        return self._fault_reply(fault, rid)

    def _fault_reply(self, fault: Fault, rid: str) -> GatewayReply:
        if fault in (Fault.DROP, Fault.DROP_AFTER):
            return GatewayReply(0, drop=True)
        return _gateway_error(_FAULT_REPLIES[fault], rid)

    def _invoke(self, request: IncomingRequest, rid: str, key: GatewayKey) -> GatewayReply:
        identity = ApiIdentity(api_key_id=key.key_id, api_key=key.value)
        event = build_rest_event(
            request, identity, stage=self.stage, request_id=rid, epoch=self._clock.time()
        )
        if event_size(event) > self._max_event:
            _log.warning("lambda_payload_too_large", size=event_size(event), rid=rid)
            return _gateway_error(gateway.INVOKE_FAILED, rid)
        try:
            with self._invoke_lock:
                started = time.thread_time()
                try:
                    result = self._handler(event, None)
                finally:
                    count_handler_cpu(time.thread_time() - started)
            response = parse_proxy_response(result)
        except MalformedProxyResponse as exc:
            _log.error("lambda_bad_response", error=str(exc), rid=rid)
            return _gateway_error(gateway.BAD_GATEWAY, rid)
        except Exception as exc:  # any function error is a 502, as in AWS
            _log.error("lambda_error", error_type=type(exc).__name__, rid=rid)
            return _gateway_error(gateway.BAD_GATEWAY, rid)
        if len(response.body) > self._max_event:
            _log.error("lambda_response_too_large", size=len(response.body), rid=rid)
            return _gateway_error(gateway.BAD_GATEWAY, rid)
        headers = list(response.headers)
        names = {key.lower() for key, _ in headers}
        if "content-type" not in names:
            headers.append(("Content-Type", "application/json"))  # API Gateway's default
        headers.append(("x-amzn-RequestId", rid))
        return GatewayReply(response.status, tuple(headers), response.body)
