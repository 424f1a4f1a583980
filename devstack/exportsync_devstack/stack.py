"""The whole devstack put together: moto, the env the Lambda reads, the gateway, two servers."""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import structlog

from .admin import serve_admin
from .apikeys import ApiGatewayKeyDirectory, GatewayKey
from .aws import AwsResources, MotoServer, create_resources, use_dummy_credentials
from .clock import Clock, SystemClock
from .faults import Fault, FaultInjector
from .gateway import Gateway, Handler
from .http_api import serve_api
from .plans import PlanLedger, PlanLimits
from .quota import MemoryQuotaStore, QuotaStore
from .s3_front import S3Front
from .serving import BackgroundServer
from .state import FileQuotaStore
from .users import SeededUser, seed_users, user_ids

__all__ = ["Devstack", "DevstackOptions", "load_lambda_handler"]

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
    users_table: str = "exportsync-users"
    user_id: str = "devstack-user"
    users: int = 1
    # How long the gateway and the function keep what they read about keys (a revoked or
    # rotated key is refused within this time).
    key_cache_seconds: float = 1.0
    api_key: str | None = None
    stage: str = "devstack"
    slow_seconds: float = 3.0

    def __repr__(self) -> str:  # api_key is a secret
        return f"DevstackOptions(host={self.host!r}, port={self.port}, state_dir={self.state_dir})"


def verify_completed_upload(key: str) -> object:
    """The verifier function, as the bucket's Object Created event would run it on AWS."""
    verify = importlib.import_module("exportsync_api.verify")
    app = importlib.import_module("exportsync_api.app")
    return verify.verify_completed(app.default_dependencies().objects, key)


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
        self._private: str | None = None
        self._servers: list[BackgroundServer] = []
        self.gateway: Gateway | None = None
        self.usage_plan_id = ""
        self.users: list[SeededUser] = []

    def _store_for(self, seeded: dict[str, str]) -> Callable[[GatewayKey], QuotaStore]:
        """Seeded keys keep their day in state_dir (quota.json for the first, as before)."""
        state_dir = self.options.state_dir

        def store_for(key: GatewayKey) -> QuotaStore:
            name = seeded.get(key.key_id)
            if state_dir is None or name is None:
                return MemoryQuotaStore()
            return FileQuotaStore(state_dir, name)

        return store_for

    def start(self) -> dict[str, Any]:
        opts = self.options
        # moto checks no signature: it listens on a socket in a folder only this user may
        # enter, behind the front, which takes SigV4-signed (or presigned) requests only.
        self._private = tempfile.mkdtemp(prefix="exportsync-devstack-")
        self._moto = MotoServer(socket_path=os.path.join(self._private, "moto.sock"))
        upstream = self._moto.start()
        use_dummy_credentials(opts.region)
        s3_front = S3Front(
            (opts.host, 0),
            upstream,
            {os.environ["AWS_ACCESS_KEY_ID"]: os.environ["AWS_SECRET_ACCESS_KEY"]},
            self._clock.time,
            on_completed=verify_completed_upload,
        )
        s3_server = BackgroundServer(s3_front, "devstack-s3").start()
        self._servers.append(s3_server)
        endpoint = s3_server.url
        use_dummy_credentials(opts.region, endpoint)
        create_resources(AwsResources(endpoint, opts.region, opts.bucket, opts.table))
        import boto3  # noqa: PLC0415 -- keep `import exportsync_devstack` light

        apigateway = boto3.client("apigateway", endpoint_url=endpoint)
        limits = PlanLimits(opts.rate, opts.burst, opts.quota)
        self.usage_plan_id, self.users = seed_users(
            apigateway,
            boto3.client("dynamodb", endpoint_url=endpoint),
            limits=limits,
            table=opts.users_table,
            names=user_ids(opts.user_id, opts.users),
            first_key=opts.api_key,
            state_dir=opts.state_dir,
        )
        # Every client goes through the strict front, so the Lambda's presigned URLs name it.
        os.environ["AWS_ENDPOINT_URL_S3"] = endpoint
        os.environ["EXPORTSYNC_BUCKET"] = opts.bucket
        os.environ["EXPORTSYNC_TABLE"] = opts.table
        os.environ["EXPORTSYNC_USERS_TABLE"] = opts.users_table
        os.environ["EXPORTSYNC_USERS_CACHE_SECONDS"] = str(opts.key_cache_seconds)
        os.environ.pop("EXPORTSYNC_KEY_USERS", None)  # the registry decides, as on AWS
        # No function timeout here: a loaded machine must not turn writes into "retry" answers.
        os.environ.setdefault("EXPORTSYNC_WRITE_SECONDS", "900")
        handler = self._handler if self._handler is not None else load_lambda_handler()
        faults = (
            FaultInjector(opts.fault_rate, opts.seed, opts.fault_kinds) if opts.fault_rate else None
        )
        seeded_files = {
            user.api_key_id: "quota.json" if index == 0 else f"quota.{user.user_id}.json"
            for index, user in enumerate(self.users)
        }
        plans = PlanLedger(limits, self._clock, self._store_for(seeded_files))
        for user in self.users:  # in order, so the first user's day is /usage's `quota`
            plans.plan_for(GatewayKey(user.api_key_id, user.user_id, user.api_key))
        self.gateway = Gateway(
            handler=handler,
            keys=ApiGatewayKeyDirectory(apigateway, self.usage_plan_id, opts.key_cache_seconds),
            plans=plans,
            faults=faults,
            clock=self._clock,
            stage=opts.stage,
            slow_seconds=opts.slow_seconds,
        )
        api = serve_api(self.gateway, opts.host, opts.port)
        self._servers.append(api)
        admin = serve_admin(self.gateway, opts.host, opts.admin_port, s3=s3_front.usage)
        self._servers.append(admin)
        first = self.users[0]
        info: dict[str, Any] = {
            "api_url": f"{api.url}/{opts.stage}",
            "api_key": first.api_key,
            "user_id": first.user_id,
            "aws_endpoint": endpoint,
            "region": opts.region,
            "bucket": opts.bucket,
            "table": opts.table,
            "admin_url": admin.url,
        }
        if len(self.users) > 1:  # the single-user line stays exactly as it always was
            info["users"] = [{"user_id": u.user_id, "api_key": u.api_key} for u in self.users]
        return info

    def stop(self) -> None:
        """Stop the servers (joining their threads), then moto; safe to call twice."""
        while self._servers:
            self._servers.pop().stop()
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None
