"""The devstack's AWS endpoint takes SigV4-signed requests only (issue 17, item 12): a local
process without the credentials can neither list a user's objects nor write into a prefix, and
moto itself is not on any TCP port."""

from __future__ import annotations

import hashlib
import os
import stat
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest
import requests
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from exportsync_devstack.s3_checks import PresignedRequest
from exportsync_devstack.sigv4 import check_signed
from support.devstack import DevstackInfo, dynamo_items, s3_objects, start_devstack

pytestmark = pytest.mark.integration

SECRETS = {"testing": "testing"}
DATA = b"date,steps\n2026-02-10,8123\n"


@pytest.fixture(scope="module")
def devstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevstackInfo]:
    with start_devstack(tmp_path_factory.mktemp("signed"), "--rate", "0", "--quota", "0") as info:
        yield info


def _code(response: requests.Response) -> str | None:
    return ET.fromstring(response.content).findtext("Code")  # noqa: S314 -- the devstack's XML


def _stored_one(info: DevstackInfo) -> str:
    sha = hashlib.sha256(DATA).hexdigest()
    response = requests.post(
        f"{info.api_url}/upload",
        headers={"x-api-key": info.api_key},
        files=[("file", ("a.csv", DATA, "text/csv"))],
        timeout=30,
    )
    assert response.status_code == 200
    key: str = response.json()["results"][0]["key"]
    assert sha in key
    return key


def test_unsigned_requests_list_and_write_nothing(devstack: DevstackInfo) -> None:
    key = _stored_one(devstack)
    base = devstack.aws_endpoint
    listing = requests.get(f"{base}/{devstack.bucket}?list-type=2", timeout=10)
    assert listing.status_code == 403
    assert _code(listing) == "AccessDenied"
    assert key.encode() not in listing.content
    assert requests.get(f"{base}/{devstack.bucket}/{key}", timeout=10).status_code == 403
    evil = f"{devstack.bucket}/uploads/{devstack.user_id}/{'0' * 64}/evil.csv"
    assert requests.put(f"{base}/{evil}", data=b"x", timeout=10).status_code == 403
    tables = requests.post(
        base,
        headers={
            "X-Amz-Target": "DynamoDB_20120810.Scan",
            "Content-Type": "application/x-amz-json-1.0",
        },
        data=b'{"TableName": "%s"}' % devstack.table.encode(),
        timeout=10,
    )
    assert tables.status_code == 403
    # The signed helpers still see exactly what the API stored.
    assert list(s3_objects(devstack)) == [key]
    assert dynamo_items(devstack) == []


def test_a_wrong_secret_is_refused(devstack: DevstackInfo) -> None:
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="guessed", region_name=devstack.region
    )
    for client, call in (
        (session.client("s3", endpoint_url=devstack.aws_endpoint), "list_buckets"),
        (session.client("dynamodb", endpoint_url=devstack.aws_endpoint), "list_tables"),
    ):
        with pytest.raises(ClientError, match="SignatureDoesNotMatch"):
            getattr(client, call)()
    stranger = boto3.session.Session(
        aws_access_key_id="AKIASTRANGER", aws_secret_access_key="x", region_name=devstack.region
    ).client("s3", endpoint_url=devstack.aws_endpoint)
    with pytest.raises(ClientError, match="InvalidAccessKeyId"):
        stranger.list_buckets()


def test_moto_listens_on_no_tcp_port(devstack: DevstackInfo) -> None:
    """Only the front's port (and the gateway's and the admin's) are the process's TCP ports."""
    front = urlsplit(devstack.aws_endpoint).port
    ports = {urlsplit(url).port for url in (devstack.api_url, devstack.admin_url)} | {front}
    pid = devstack.process.pid
    inodes = {
        os.readlink(f"/proc/{pid}/fd/{fd}")
        for fd in os.listdir(f"/proc/{pid}/fd")
        if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
    }
    listening: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and f"socket:[{fields[9]}]" in inodes:  # 0A: LISTEN
                listening.add(int(fields[1].rsplit(":", 1)[1], 16))
    assert listening == ports
    unix = [
        line.split()[-1]
        for line in Path("/proc/net/unix").read_text().splitlines()[1:]
        if line.split()[-1].endswith("moto.sock") and f"socket:[{line.split()[6]}]" in inodes
    ]
    assert len(unix) == 1
    folder = Path(unix[0]).parent
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def _signed(service: str, secret: str, body: bytes = b"") -> PresignedRequest:
    request = AWSRequest(
        method="POST", url="http://127.0.0.1:9/bucket/key?x=1", data=body, headers={}
    )
    signer = S3SigV4Auth if service == "s3" else SigV4Auth
    if service == "s3":
        request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    signer(Credentials("testing", secret), service, "us-east-1").add_auth(request)
    headers = {name: str(value) for name, value in request.headers.items()}
    headers["Host"] = "127.0.0.1:9"
    return PresignedRequest("POST", "/bucket/key?x=1", headers)


@pytest.mark.parametrize("service", ["s3", "dynamodb", "apigateway"])
def test_check_signed_takes_botocores_signature_and_nothing_else(service: str) -> None:
    def code(request: PresignedRequest, body: bytes) -> str | None:
        refusal = check_signed(request, body, SECRETS)
        return None if refusal is None else refusal.code

    assert code(_signed(service, "testing", b"{}"), b"{}") is None
    assert code(_signed(service, "other", b"{}"), b"{}") == "SignatureDoesNotMatch"
    if service != "s3":  # the body is in the signature
        assert code(_signed(service, "testing", b"{}"), b"{ }") == "SignatureDoesNotMatch"
    assert code(PresignedRequest("GET", "/", {"Host": "h"}), b"") == "AccessDenied"
