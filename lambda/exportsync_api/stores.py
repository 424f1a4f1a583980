"""The two storage boundaries behind small Protocols, with S3 and DynamoDB implementations.

Tests inject in-memory fakes; the devstack and AWS get the real ones (built in ``app``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

from botocore.exceptions import ClientError

from exportsync_wire import Status
from exportsync_wire.parts import checksum_b64
from exportsync_wire.sessions import HASH_ATTRIBUTE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef
    from mypy_boto3_s3 import S3Client

__all__ = [
    "DynamoSessionStore",
    "ObjectStore",
    "PutOutcome",
    "S3ObjectStore",
    "SessionStore",
    "checksum_b64",
    "record_key",
]

PutOutcome = Literal[Status.STORED, Status.DUPLICATE]


class ObjectStore(Protocol):
    def put_if_absent(self, key: str, data: bytes, sha256_hex: str) -> PutOutcome: ...

    def exists(self, key: str) -> bool: ...

    def stored_etag(self, key: str) -> str | None:
        """The ETag of the object at ``key`` (a multipart object's ends ``-N``); None: absent."""
        ...

    def presign_put(self, key: str, sha256_hex: str, size: int, expires_in: int) -> str: ...

    def start_multipart(self, key: str) -> str: ...

    def presign_part(
        self,
        key: str,
        upload_id: str,
        number: int,
        length: int,
        sha256_hex: str,
        *,
        expires_in: int,
    ) -> str: ...

    def presign_complete(
        self, key: str, upload_id: str, composite_b64: str, size: int, expires_in: int
    ) -> str: ...

    def load_record(self, key: str) -> dict[str, Any] | None:
        """The multipart upload record kept for object ``key`` (``resume.UploadRecord``)."""
        ...

    def save_record(self, key: str, record: Mapping[str, Any]) -> None: ...

    def object_sha256(self, key: str) -> tuple[str, str | None] | None:
        """(sha256 hex of the object's bytes, its version id), streamed; None when absent."""
        ...

    def delete_version(self, key: str, version_id: str | None) -> None: ...


class SessionStore(Protocol):
    def put_unless_same(
        self, item: Mapping[str, AttributeValueTypeDef], content_hash: str
    ) -> PutOutcome: ...


# Where the record binding a multipart upload to its user, key, sha256, size and part digests
# lives: beside the objects, outside uploads/ (readers of uploads/ never see it).
RECORD_PREFIX = "multipart/"
_HASH_CHUNK = 1024 * 1024


def record_key(key: str) -> str:
    """The record's own key for the object ``key``."""
    return f"{RECORD_PREFIX}{key}.json"


class S3ObjectStore:
    """Objects in one bucket. Needs only s3:PutObject and a prefix-limited s3:ListBucket."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def put_if_absent(self, key: str, data: bytes, sha256_hex: str) -> PutOutcome:
        # A conditional write: one request, and no race between "check" and "put".
        try:
            self._client.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=data,
                IfNoneMatch="*",
                ChecksumSHA256=checksum_b64(sha256_hex),
            )
        except ClientError as exc:
            if _error_code(exc) == "PreconditionFailed":
                return Status.DUPLICATE
            raise
        return Status.STORED

    def exists(self, key: str) -> bool:
        return self.stored_etag(key) is not None

    def stored_etag(self, key: str) -> str | None:
        # ListObjectsV2 rather than HeadObject: a missing key answers cleanly with only
        # ListBucket on the prefix, where HeadObject would need GetObject and say 403.
        listing = self._client.list_objects_v2(Bucket=self._bucket, Prefix=key, MaxKeys=1)
        for obj in listing.get("Contents", []):
            if obj.get("Key") == key:
                return str(obj.get("ETag", ""))
        return None

    def presign_put(self, key: str, sha256_hex: str, size: int, expires_in: int) -> str:
        # The checksum and length are signed headers: the PUT must carry them, and S3
        # rejects a body whose sha256 differs (BadDigest).
        return self._client.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self._bucket,
                "Key": key,
                "ChecksumSHA256": checksum_b64(sha256_hex),
                "ContentLength": size,
            },
            ExpiresIn=expires_in,
            HttpMethod="PUT",
        )

    def start_multipart(self, key: str) -> str:
        """A new multipart upload's id (s3:PutObject covers every step of one). SHA256: S3
        then wants each part's checksum, and keeps the parts' composite."""
        return self._client.create_multipart_upload(
            Bucket=self._bucket, Key=key, ChecksumAlgorithm="SHA256"
        )["UploadId"]

    def presign_part(
        self,
        key: str,
        upload_id: str,
        number: int,
        length: int,
        sha256_hex: str,
        *,
        expires_in: int,
    ) -> str:
        # Length and checksum are signed: S3 stores only these bytes (BadDigest otherwise).
        return self._client.generate_presigned_url(
            "upload_part",
            Params={
                "Bucket": self._bucket,
                "Key": key,
                "UploadId": upload_id,
                "PartNumber": number,
                "ContentLength": length,
                "ChecksumSHA256": checksum_b64(sha256_hex),
            },
            ExpiresIn=expires_in,
            HttpMethod="PUT",
        )

    def presign_complete(
        self, key: str, upload_id: str, composite_b64: str, size: int, expires_in: int
    ) -> str:
        # The body (part numbers, ETags, checksums) is the client's; the signed headers pin
        # what it may assemble: the parts' composite sha256, the object's size, and no
        # overwrite of an object already there.
        return self._client.generate_presigned_url(
            "complete_multipart_upload",
            Params={
                "Bucket": self._bucket,
                "Key": key,
                "UploadId": upload_id,
                "ChecksumSHA256": composite_b64,
                "MpuObjectSize": size,
                "IfNoneMatch": "*",
            },
            ExpiresIn=expires_in,
            HttpMethod="POST",
        )

    def load_record(self, key: str) -> dict[str, Any] | None:
        try:
            answer = self._client.get_object(Bucket=self._bucket, Key=record_key(key))
        except ClientError as exc:
            if _error_code(exc) in ("NoSuchKey", "404"):
                return None
            raise
        value = json.loads(answer["Body"].read())
        return value if isinstance(value, dict) else None

    def save_record(self, key: str, record: Mapping[str, Any]) -> None:
        self._client.put_object(
            Bucket=self._bucket,
            Key=record_key(key),
            Body=json.dumps(dict(record)).encode(),
            ContentType="application/json",
        )

    def object_sha256(self, key: str) -> tuple[str, str | None] | None:
        try:
            answer = self._client.get_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in ("NoSuchKey", "404"):
                return None
            raise
        digest = hashlib.sha256()
        for chunk in answer["Body"].iter_chunks(_HASH_CHUNK):
            digest.update(chunk)
        return digest.hexdigest(), answer.get("VersionId")

    def delete_version(self, key: str, version_id: str | None) -> None:
        # The bucket keeps versions: the version itself goes, not just behind a delete marker.
        if version_id:
            self._client.delete_object(Bucket=self._bucket, Key=key, VersionId=version_id)
        else:
            self._client.delete_object(Bucket=self._bucket, Key=key)


class DynamoSessionStore:
    """Sessions in one table (user_id HASH, timestamp RANGE). Needs only dynamodb:PutItem."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    def put_unless_same(
        self, item: Mapping[str, AttributeValueTypeDef], content_hash: str
    ) -> PutOutcome:
        # New key or changed content => written (a re-sent, edited session replaces the old
        # one); same content => the condition fails and the answer is "duplicate".
        try:
            self._client.put_item(
                TableName=self._table,
                Item={**item, HASH_ATTRIBUTE: {"S": content_hash}},
                ConditionExpression="attribute_not_exists(#h) OR #h <> :h",
                ExpressionAttributeNames={"#h": HASH_ATTRIBUTE},
                ExpressionAttributeValues={":h": {"S": content_hash}},
            )
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return Status.DUPLICATE
            raise
        return Status.STORED


def _error_code(exc: ClientError) -> str:
    error: Any = exc.response.get("Error", {})
    return str(error.get("Code", ""))
