"""An in-process gateway over real loopback HTTP with a scripted stand-in for the Lambda.

For tests of the gateway itself; other suites start the real devstack (support.devstack)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from exportsync_devstack.admin import serve_admin
from exportsync_devstack.apikeys import GatewayKey, StaticKeyDirectory
from exportsync_devstack.clock import FakeClock
from exportsync_devstack.faults import FaultInjector
from exportsync_devstack.gateway import Gateway, Handler
from exportsync_devstack.http_api import serve_api
from exportsync_devstack.plans import PlanLedger, PlanLimits
from exportsync_devstack.serving import BackgroundServer

__all__ = ["API_KEY", "KEYS", "LiveGateway", "StandIn", "gateway_factory"]

API_KEY = "test-key-0123456789abcdefghij"
# The first key is API_KEY; the others are for tests of per-key plans.
KEYS = (
    GatewayKey("key-id-1", "alice", API_KEY),
    GatewayKey("key-id-2", "bob", "test-key-bob-0123456789abcdef"),
    GatewayKey("key-id-3", "carol", "test-key-carol-0123456789abcd", enabled=False),
)


@dataclass
class StandIn:
    """Records every event; answers with `reply(event)` (default: 200 echoing the route)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    reply: Callable[[dict[str, Any]], Any] | None = None

    def __call__(self, event: dict[str, Any], context: object) -> Any:
        self.events.append(event)
        if self.reply is not None:
            return self.reply(event)
        body = {"route": f"{event['httpMethod']} {event['path']}"}
        return {"statusCode": 200, "headers": {}, "body": json.dumps(body)}


@dataclass
class LiveGateway:
    url: str
    admin_url: str
    clock: FakeClock
    handler: StandIn
    gateway: Gateway


@contextmanager
def gateway_factory() -> Iterator[Callable[..., LiveGateway]]:
    """Yields start(rate=1, burst=1, quota=10, ...); stops every gateway it started on exit."""
    servers: list[BackgroundServer] = []

    def start(
        *,
        rate: float = 1.0,
        burst: int = 1,
        quota: int = 10,
        fault_rate: float = 0.0,
        seed: int | None = None,
        faults: FaultInjector | None = None,
        handler: Handler | None = None,
        **gateway_args: Any,
    ) -> LiveGateway:
        clock = FakeClock()
        stand_in = StandIn()
        gateway = Gateway(
            handler=handler if handler is not None else stand_in,
            keys=StaticKeyDirectory(KEYS),
            plans=PlanLedger(PlanLimits(rate, burst, quota), clock),
            faults=faults or (FaultInjector(fault_rate, seed) if fault_rate else None),
            clock=clock,
            **gateway_args,
        )
        api = serve_api(gateway)
        servers.append(api)
        admin = serve_admin(gateway)
        servers.append(admin)
        return LiveGateway(f"{api.url}/devstack", admin.url, clock, stand_in, gateway)

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
