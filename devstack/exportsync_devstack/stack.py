"""The whole devstack put together: moto, the env the Lambda reads, the gateway, two servers."""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import structlog

from .admin import serve_admin
from .aws import AwsResources, MotoServer, create_resources, use_dummy_credentials
from .clock import Clock, SystemClock
from .faults import Fault, FaultInjector
from .gateway import Gateway, Handler
from .http_api import serve_api
from .quota import DailyQuota, MemoryQuotaStore, QuotaStore
from .serving import BackgroundServer
from .state import FileQuotaStore, load_or_create_api_key
from .throttle import TokenBucket

__all__ = ["API_KEY_ID", "Devstack", "DevstackOptions", "load_lambda_handler"]

API_KEY_ID = "devstackkey01"  # the usage-plan key's id, as requestContext.identity.apiKeyId

_log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class DevstackOptions:
    host: str = "127.0.0.1"
    port: int = 0
    admin_port: int = 0
    rate: float = 1.0
    burst: int = 1
    quota: int = 10
    fault_rate: float = 0.0
    seed: int | None = None
    fault_kinds: tuple[Fault, ...] = tuple(Fault)
    state_dir: Path | None = None
    region: str = "us-east-1"
    bucket: str = "exportsync-devstack"
    table: str = "exportsync-sessions"
    user_id: str = "devstack-user"
    api_key: str | None = None
    stage: str = "devstack"
    slow_seconds: float = 3.0

    def __repr__(self) -> str:  # api_key is a secret
        return f"DevstackOptions(host={self.host!r}, port={self.port}, state_dir={self.state_dir})"


def load_lambda_handler() -> Handler:
    """Import the real function; call only after the EXPORTSYNC_* and AWS_* env is in place."""
    module = importlib.import_module("exportsync_api.app")
    return cast(Handler, module.lambda_handler)


class Devstack:
    """start() brings everything up and returns the ready line's fields; stop() undoes it."""

    def __init__(
        self, options: DevstackOptions, handler: Handler | None = None, clock: Clock | None = None
    ) -> None:
        self.options = options
        self._handler = handler
        self._clock = clock if clock is not None else SystemClock()
        self._moto: MotoServer | None = None
        self._servers: list[BackgroundServer] = []
        self.gateway: Gateway | None = None

    def start(self) -> dict[str, str]:
        opts = self.options
        api_key = opts.api_key or load_or_create_api_key(opts.state_dir)
        store: QuotaStore = (
            FileQuotaStore(opts.state_dir) if opts.state_dir is not None else MemoryQuotaStore()
        )
        self._moto = MotoServer(opts.host)
        endpoint = self._moto.start()
        use_dummy_credentials(opts.region, endpoint)
        create_resources(AwsResources(endpoint, opts.region, opts.bucket, opts.table))
        os.environ["EXPORTSYNC_BUCKET"] = opts.bucket
        os.environ["EXPORTSYNC_TABLE"] = opts.table
        os.environ["EXPORTSYNC_KEY_USERS"] = json.dumps({API_KEY_ID: opts.user_id})
        # No function timeout here: a loaded machine must not turn writes into "retry" answers.
        os.environ.setdefault("EXPORTSYNC_WRITE_SECONDS", "900")
        handler = self._handler if self._handler is not None else load_lambda_handler()
        faults = (
            FaultInjector(opts.fault_rate, opts.seed, opts.fault_kinds) if opts.fault_rate else None
        )
        self.gateway = Gateway(
            handler=handler,
            api_key=api_key,
            api_key_id=API_KEY_ID,
            throttle=TokenBucket(opts.rate, opts.burst, self._clock),
            quota=DailyQuota(opts.quota, self._clock, store),
            faults=faults,
            clock=self._clock,
            stage=opts.stage,
            slow_seconds=opts.slow_seconds,
        )
        api = serve_api(self.gateway, opts.host, opts.port)
        self._servers.append(api)
        admin = serve_admin(self.gateway, opts.host, opts.admin_port)
        self._servers.append(admin)
        return {
            "api_url": f"{api.url}/{opts.stage}",
            "api_key": api_key,
            "user_id": opts.user_id,
            "aws_endpoint": endpoint,
            "region": opts.region,
            "bucket": opts.bucket,
            "table": opts.table,
            "admin_url": admin.url,
        }

    def stop(self) -> None:
        """Stop the servers (joining their threads), then moto; safe to call twice."""
        while self._servers:
            self._servers.pop().stop()
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
