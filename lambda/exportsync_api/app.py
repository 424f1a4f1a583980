"""The Lambda entry point: ``exportsync_api.app.lambda_handler(event, context)``.

Routing by Powertools: REST API (payload 1.0) events go to an ``APIGatewayRestResolver``, HTTP API
(payload 2.0) events to an ``APIGatewayHttpResolver``; both carry the same four routes. The API
they serve is described in docs/api.md.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import (
    APIGatewayHttpResolver,
    APIGatewayRestResolver,
    Response,
)
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from botocore.config import Config

from exportsync_wire import ErrorCode, routes

from . import events
from .batch import BatchStores, batch_form
from .errors import ApiError
from .form import parse_form
from .pool import Pool
from .presign import parse_presign, presign_files
from .registry import (
    CachedUserDirectory,
    DynamoUserDirectory,
    UserDirectory,
    no_identity,
    resolve_user,
)
from .sessions import session_texts, store_sessions
from .settings import Settings, load_settings
from .stores import DynamoSessionStore, ObjectStore, S3ObjectStore, SessionStore
from .uploads import upload_form

__all__ = [
    "Dependencies",
    "default_dependencies",
    "handle",
    "lambda_handler",
    "write_pool",
]

# Time kept after the last write starts: its own retries and the answer (boto3 calls are bounded
# by connect/read timeouts of 2 s and 5 s, 3 attempts).
_FINISH_RESERVE_S = 8.0

# The event is never logged: it holds identity.apiKey.
logger = Logger(service="exportsync-api")


@dataclass(frozen=True)
class Dependencies:
    settings: Settings
    objects: ObjectStore
    sessions: SessionStore
    users: UserDirectory | None = None  # the user registry (None: no registry table)


@functools.cache
def default_dependencies() -> Dependencies:
    """Settings and boto3 clients, built once per container (on first use, so that importing
    this module never needs the environment) and reused by every warm invocation."""
    settings = load_settings(os.environ)
    # SigV4 for presigned URLs (the checksum header must be signed); AWS_ENDPOINT_URL is
    # honoured by boto3 itself, which is how the devstack points us at moto.
    # One pooled connection per worker; "standard" retries (3 attempts unless AWS_MAX_ATTEMPTS
    # says otherwise: the function has 28 s for up to 1,000 entries), after which an entry
    # still throttled answers "retry".
    common = Config(
        max_pool_connections=settings.workers,
        retries={"mode": "standard"},
        connect_timeout=2,
        read_timeout=5,
    )
    s3 = boto3.client("s3", config=common.merge(Config(signature_version="s3v4")))
    dynamodb = boto3.client("dynamodb", config=common)
    users = (
        CachedUserDirectory(
            DynamoUserDirectory(dynamodb, settings.users_table), settings.users_cache_seconds
        )
        if settings.users_table
        else None
    )
    return Dependencies(
        settings=settings,
        objects=S3ObjectStore(s3, settings.bucket),
        sessions=DynamoSessionStore(dynamodb, settings.table),
        users=users,
    )


def lambda_handler(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """AWS Lambda entry point (``context`` may be None, as in the devstack)."""
    try:
        deps = default_dependencies()
    except Exception:
        logger.exception("startup_failed")
        return _json(500, _error_body(ErrorCode.INTERNAL_ERROR, "the function is misconfigured"))
    return handle(event, context, deps)


def handle(event: Mapping[str, Any], context: Any, deps: Dependencies) -> dict[str, Any]:
    """Route one event with explicit dependencies (what tests call)."""
    resolver = _HTTP if events.is_v2(event) else _REST
    # Same effect as append_context (typed); resolve() clears it afterwards.
    resolver.context["deps"] = deps
    return _single_headers(resolver.resolve(event, context))


def _single_headers(response: dict[str, Any]) -> dict[str, Any]:
    """Powertools answers REST events with multiValueHeaders only; add plain ``headers`` too
    (API Gateway merges both) so a caller such as the devstack can read either."""
    multi = response.get("multiValueHeaders")
    if multi is not None:
        response["multiValueHeaders"] = {name: list(values) for name, values in multi.items()}
        response.setdefault("headers", {})
        for name, values in response["multiValueHeaders"].items():
            if values:
                response["headers"].setdefault(name, ", ".join(values))
    return response


def _json(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A proxy response dict for answers produced outside a resolver."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def _error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _response(status: int, body: Mapping[str, Any], headers: dict[str, str] | None = None) -> Any:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(body),
        headers=headers,
    )


def _register(resolver: ApiGatewayResolver) -> None:
    def deps() -> Dependencies:
        value = resolver.context["deps"]
        assert isinstance(value, Dependencies)
        return value

    def raw() -> Mapping[str, Any]:
        return resolver.current_event.raw_event

    def pool() -> Pool:
        return write_pool(deps().settings, resolver.lambda_context)

    def user() -> str | None:
        # No identity or a revoked key raises the 403 ApiError here, before any body is read:
        # without a key (an HTTP API, a route without a usage plan) the body could name anyone.
        key_id = events.api_key_id(raw())
        settings = deps().settings
        if key_id is None and not settings.allow_anonymous:
            raise no_identity()
        return resolve_user(key_id, settings.key_users, deps().users)

    @resolver.post(routes.UPLOAD)
    def upload() -> Any:
        key_user = user()
        form = parse_form(events.raw_body(raw()), events.header(raw(), "content-type"))
        result = upload_form(form, key_user, deps().objects, pool())
        _log_results("upload_done", result)
        return _response(200, result)

    @resolver.post(routes.SESSION)
    def session() -> Any:
        key_user = user()
        # Sized before parsed: an oversized session or request never becomes Python objects.
        texts = session_texts(events.raw_body(raw()))
        result = store_sessions(texts.items, key_user, deps().sessions, pool())
        _log_results("session_done", result)
        return _response(200, result)

    @resolver.post(routes.PRESIGN)
    def presign() -> Any:
        key_user = user()
        request = parse_presign(events.raw_body(raw()))
        settings = deps().settings
        result = presign_files(
            request, key_user, deps().objects, settings.presign_seconds, pool=pool()
        )
        _log_results("presign_done", result)
        return _response(200, result)

    @resolver.post(routes.BATCH)
    def batch() -> Any:
        key_user = user()
        form = parse_form(events.raw_body(raw()), events.header(raw(), "content-type"))
        settings = deps().settings
        stores = BatchStores(
            objects=deps().objects,
            sessions=deps().sessions,
            presign_seconds=settings.presign_seconds,
            pool=pool(),
        )
        result = batch_form(form, key_user, stores)
        _log_results("batch_done", result)
        return _response(200, result)

    @resolver.exception_handler(ApiError)  # type: ignore[untyped-decorator]  # unannotated upstream
    def client_error(exc: ApiError) -> Any:
        logger.info("client_error", code=exc.code, status=exc.status)
        return _response(exc.status, exc.body())

    @resolver.not_found
    def not_found(_exc: NotFoundError) -> Any:
        path = resolver.current_event.path
        if path in routes.ROUTES:
            return _response(
                405,
                _error_body(ErrorCode.METHOD_NOT_ALLOWED, "use POST"),
                headers={"Allow": "POST"},
            )
        return _response(404, _error_body(ErrorCode.NOT_FOUND, "no such route"))

    @resolver.exception_handler(Exception)  # type: ignore[untyped-decorator]  # unannotated upstream
    def server_fault(exc: Exception) -> Any:
        # Exception text from boto3 names buckets and keys, never the API key.
        logger.exception("server_fault", error_type=type(exc).__name__)
        return _response(500, _error_body(ErrorCode.INTERNAL_ERROR, "internal server error"))


def write_pool(
    settings: Settings, context: Any, clock: Callable[[], float] = time.monotonic
) -> Pool:
    """This request's pool: no write starts later than ``settings.write_seconds`` from now, nor
    closer than ``_FINISH_RESERVE_S`` to the function's timeout (when a context tells it)."""
    seconds = float(settings.write_seconds)
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        seconds = min(seconds, remaining() / 1000 - _FINISH_RESERVE_S)
    return Pool(workers=settings.workers, deadline=clock() + max(seconds, 0.0), clock=clock)


def _log_results(event_name: str, result: Mapping[str, Any]) -> None:
    statuses: dict[str, int] = {}
    for item in result.get("results", []):
        statuses[item["status"]] = statuses.get(item["status"], 0) + 1
    logger.info(event_name, statuses=statuses)


def _build(factory: Callable[[], ApiGatewayResolver]) -> ApiGatewayResolver:
    resolver = factory()
    _register(resolver)
    return resolver


_REST = _build(APIGatewayRestResolver)
_HTTP = _build(APIGatewayHttpResolver)
