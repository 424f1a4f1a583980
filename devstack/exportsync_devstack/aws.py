"""The AWS half: moto's server on loopback, the bucket and the table, dummy credentials."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

from exportsync_wire import table

__all__ = ["AwsResources", "MotoServer", "create_resources", "use_dummy_credentials"]


def use_dummy_credentials(region: str, endpoint: str | None = None) -> None:
    """Point every boto3 client of this process at `endpoint` with fake keys, never at AWS."""
    os.environ["AWS_ACCESS_KEY_ID"] = "testing"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"  # noqa: S105 -- moto's dummy credential
    os.environ["AWS_SESSION_TOKEN"] = "testing"  # noqa: S105 -- moto's dummy credential
    os.environ["AWS_DEFAULT_REGION"] = region
    os.environ["AWS_REGION"] = region
    os.environ.pop("AWS_PROFILE", None)
    if endpoint is not None:
        os.environ["AWS_ENDPOINT_URL"] = endpoint


class MotoServer:
    """moto's server mode on `host`, a free port when `port` is 0, or on the Unix socket
    `socket_path` (then only a process that may enter its folder can reach it).

    The same pieces moto.server.ThreadedMotoServer wires (its werkzeug app and request handler),
    run with a short poll interval: ThreadedMotoServer polls every 0.5 s, which made every
    devstack stop, and so every e2e test, half a second slower.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, socket_path: str | None = None
    ) -> None:
        self._host = f"unix://{socket_path}" if socket_path is not None else host
        self._port = port
        self._socket_path = socket_path
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        # Heavy imports, kept here so `import exportsync_devstack` stays light.
        from moto.moto_server.werkzeug_app import (  # noqa: PLC0415
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server  # noqa: PLC0415

        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(
            self._host, self._port, app, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="devstack-moto", daemon=True
        )
        self._thread.start()
        return self.url

    @property
    def url(self) -> str:
        if self._socket_path is not None:
            return f"unix://{self._socket_path}"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._server.server_close()
            self._thread = None


@dataclass(frozen=True)
class AwsResources:
    endpoint: str
    region: str
    bucket: str
    table: str


def create_resources(resources: AwsResources) -> None:
    """Create the bucket and the sessions table (its keys: exportsync_wire.table)."""
    import boto3  # noqa: PLC0415 -- keep `import exportsync_devstack` light

    session = boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 -- moto's dummy credential
        region_name=resources.region,
    )
    s3 = session.client("s3", endpoint_url=resources.endpoint)
    if resources.region == "us-east-1":
        s3.create_bucket(Bucket=resources.bucket)
    else:
        s3.create_bucket(
            Bucket=resources.bucket,
            CreateBucketConfiguration={"LocationConstraint": resources.region},  # type: ignore[typeddict-item]
        )
    dynamodb = session.client("dynamodb", endpoint_url=resources.endpoint)
    dynamodb.create_table(
        TableName=resources.table,
        KeySchema=table.KEY_SCHEMA,
        AttributeDefinitions=table.ATTRIBUTE_DEFINITIONS,
        BillingMode="PAY_PER_REQUEST",
    )
