"""CONTRACT §3b on the function: no identity no write, sessions sized before they are parsed,
errors that name no internals, a malformed number anywhere answers 400."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from apigw_events import body_of, http_event, load_event, rest_event
from botocore.exceptions import ClientError
from fakes import MemoryObjectStore, MemorySessionStore
from lambda_support import anonymous, json_part, multipart_body

from exportsync_api import sessions
from exportsync_api.app import Dependencies, handle
from exportsync_api.faults import classify
from exportsync_api.jsonscan import ScanError, split_sessions
from exportsync_api.pool import Entry, Pool
from exportsync_api.settings import ConfigError, load_settings
from exportsync_wire import PresignResultJson, Status, limits

TEMPLATE = Path(__file__).resolve().parents[2] / "lambda" / "template.yaml"
DATA = b"date,steps\n2026-02-10,8123\n"
SHA = hashlib.sha256(DATA).hexdigest()
_TS = "2026-05-01T10:00:00Z"


def _session(n: int, **fields: object) -> dict[str, object]:
    return {"user_id": "alice", "timestamp": f"2026-05-01T10:{n:02d}:00Z", **fields}


def _route_bodies() -> list[tuple[str, bytes, str]]:
    presign = {"files": [{"filename": "a.csv", "sha256": SHA, "size": len(DATA)}]}
    upload, upload_type = multipart_body(
        [("file", ("a.csv", DATA, "text/csv")), ("user_id", (None, b"mallory", "text/plain"))]
    )
    batch, batch_type = multipart_body(
        [json_part("session", _session(1, user_id="mallory")), json_part("presign", presign)]
    )
    return [
        ("/session", json.dumps(_session(1, user_id="mallory")).encode(), "application/json"),
        ("/presign", json.dumps(presign | {"user_id": "mallory"}).encode(), "application/json"),
        ("/upload", upload, upload_type),
        ("/batch", batch, batch_type),
    ]


def _stored(deps: Dependencies) -> tuple[list[str], list[object]]:
    objects, items = deps.objects, deps.sessions
    assert isinstance(objects, MemoryObjectStore)
    assert isinstance(items, MemorySessionStore)
    return list(objects.objects), list(items.items)


# --- No identity, no write -------------------------------------------------------------------


# Ids by route: a multipart boundary is random; pytest-xdist's workers must collect one set.
@pytest.mark.parametrize(
    ("path", "body", "content_type"), [pytest.param(*r, id=r[0]) for r in _route_bodies()]
)
@pytest.mark.parametrize("payload", ["rest-without-key", "http-api-v2"])
def test_no_identity_is_403_no_identity_on_every_route(
    memory_deps: Dependencies, path: str, body: bytes, content_type: str, payload: str
) -> None:
    if payload == "http-api-v2":
        event = http_event(path, body, content_type=content_type, binary=True)
    else:
        event = rest_event(path, body, content_type=content_type, api_key_id=None)
    response = handle(event, None, memory_deps)
    assert response["statusCode"] == 403
    assert body_of(response)["error"]["code"] == "no_identity"
    assert _stored(memory_deps) == ([], [])


def test_the_committed_v2_sample_event_is_refused(memory_deps: Dependencies) -> None:
    """tests/events/apigw-http-v2.json as it is (an HTTP API has no API keys)."""
    response = handle(load_event("apigw-http-v2.json"), None, memory_deps)
    assert response["statusCode"] == 403
    assert body_of(response)["error"]["code"] == "no_identity"


def test_anonymous_mode_lets_the_request_name_its_user(memory_deps: Dependencies) -> None:
    deps = anonymous(memory_deps)
    event = http_event("/session", json.dumps(_session(1, user_id="bob")))
    (result,) = body_of(handle(event, None, deps))["results"]
    assert result["status"] == "stored"
    assert _stored(deps)[1] == [("bob", "2026-05-01T10:01:00Z")]


def test_anonymous_mode_is_off_unless_the_setting_is_1() -> None:
    base = {"EXPORTSYNC_BUCKET": "b", "EXPORTSYNC_TABLE": "t"}
    assert load_settings(base).allow_anonymous is False
    assert load_settings(base | {"EXPORTSYNC_ALLOW_ANONYMOUS": "0"}).allow_anonymous is False
    assert load_settings(base | {"EXPORTSYNC_ALLOW_ANONYMOUS": "1"}).allow_anonymous is True
    with pytest.raises(ConfigError, match="EXPORTSYNC_ALLOW_ANONYMOUS"):
        load_settings(base | {"EXPORTSYNC_ALLOW_ANONYMOUS": "yes"})


def test_the_sam_template_never_turns_anonymous_mode_on() -> None:
    assert "EXPORTSYNC_ALLOW_ANONYMOUS" not in TEMPLATE.read_text(encoding="utf-8")


# --- Bounded work: sessions sized before they are parsed -------------------------------------


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every text the session parser is given."""
    seen: list[int] = []
    real = sessions.load_json

    def spy(body: bytes) -> object:
        seen.append(len(body))
        return real(body)

    monkeypatch.setattr(sessions, "load_json", spy)
    return seen


def _big(n: int, size: int) -> dict[str, object]:
    """A session whose JSON text is about ``size`` bytes of numbers (the costliest to parse)."""
    return _session(n, x=[0] * (size // 3))


def test_a_lone_session_over_the_limit_is_413_unparsed(
    memory_deps: Dependencies, parses: list[int]
) -> None:
    body = json.dumps(_big(1, 6_000_000)).encode()
    response = handle(rest_event("/session", body), None, memory_deps)
    assert response["statusCode"] == 413
    assert body_of(response)["error"]["code"] == "too_large"
    assert parses == []


def test_a_listed_session_over_the_limit_is_rejected_unparsed_and_the_rest_stored(
    memory_deps: Dependencies, parses: list[int]
) -> None:
    body = json.dumps({"sessions": [_session(1), _big(2, 2_000_000), _session(3)]}).encode()
    results = body_of(handle(rest_event("/session", body), None, memory_deps))["results"]
    assert [r["status"] for r in results] == ["stored", "rejected", "stored"]
    assert results[1]["error"].startswith("too_large: ")
    assert max(parses) <= limits.SESSION_TEXT_BYTES


def test_too_many_sessions_is_400_before_any_is_parsed(
    memory_deps: Dependencies, parses: list[int]
) -> None:
    body = json.dumps({"sessions": [_session(1)] * (limits.MAX_ROUTE_ENTRIES + 1)}).encode()
    response = handle(rest_event("/session", body), None, memory_deps)
    assert response["statusCode"] == 400
    assert parses == []


def test_a_batch_session_part_over_the_limit_is_rejected_unparsed(
    memory_deps: Dependencies, parses: list[int]
) -> None:
    body, content_type = multipart_body(
        [json_part("session", _big(1, 1_000_000)), json_part("session", [_session(2)])]
    )
    event = rest_event("/batch", body, content_type=content_type)
    results = body_of(handle(event, None, memory_deps))["results"]
    assert [r["status"] for r in results] == ["rejected", "stored"]
    assert results[0]["error"].startswith("too_large: ")
    assert max(parses) <= limits.SESSION_TEXT_BYTES


def test_sessions_past_the_value_budget_answer_retry_and_a_lone_one_always_fits(
    memory_deps: Dependencies,
) -> None:
    # Each session holds about 60,000 values: the second would pass the request's budget.
    heavy = [_session(n, x=[0] * 60_000) for n in range(3)]
    body = json.dumps({"sessions": heavy}).encode()
    results = body_of(handle(rest_event("/session", body), None, memory_deps))["results"]
    assert [r["status"] for r in results] == ["stored", "retry", "retry"]
    assert results[1]["error"].startswith("request_full: ")
    # Sent again alone, each fits.
    body = json.dumps({"sessions": heavy[1:2]}).encode()
    (result,) = body_of(handle(rest_event("/session", body), None, memory_deps))["results"]
    assert result["status"] == "stored"


@pytest.mark.parametrize(
    ("body", "items", "listed"),
    [
        (b'{"user_id": "a"}', [b'{"user_id": "a"}'], False),
        (b'  {"sessions": [ {"a": "]}"} , {"b": [1, {"c": "\\"]"}]} ]}  ', None, True),
        (b'{"x": {"sessions": 1}, "sessions": [[], "s", 1.5e3, null]}', None, True),
        (b"[1, 2]", [b"[1, 2]"], False),
    ],
)
def test_split_sessions_finds_each_element(
    body: bytes, items: list[bytes] | None, listed: bool
) -> None:
    texts = split_sessions(body, 10)
    assert texts.listed is listed
    if items is not None:
        assert texts.items == items
    else:
        # Each span parses to the element json.loads finds there.
        assert [json.loads(t) for t in texts.items] == json.loads(body)["sessions"]


@pytest.mark.parametrize(
    "body", [b'{"sessions": [1, 2', b'{"sessions": [1 2]}', b'{"a" 1}', b'{"a": 1} x', b"{"]
)
def test_split_sessions_refuses_a_malformed_outer_structure(body: bytes) -> None:
    with pytest.raises(ScanError):
        split_sessions(body, 10)


# --- Errors name no internals ----------------------------------------------------------------

_AWS_MESSAGE = (
    "User: arn:aws:sts::123456789012:assumed-role/exportsync-fn-role/exportsync is not "
    "authorized to perform: s3:PutObject"
)


def _denied() -> ClientError:
    response: Any = {
        "Error": {"Code": "AccessDenied", "Message": _AWS_MESSAGE},
        "ResponseMetadata": {"HTTPStatusCode": 403},
    }
    return ClientError(response, "PutObject")


def test_an_entry_error_names_our_code_and_words_only() -> None:
    fault = classify(_denied())
    assert fault.error == (
        "server_error: AccessDenied: the server cannot store this now; send it again later"
    )
    assert "123456789012" not in fault.error
    assert "exportsync-fn-role" not in fault.error
    assert fault.detail == _AWS_MESSAGE


def test_awss_message_goes_to_the_log_only(caplog: pytest.LogCaptureFixture) -> None:
    def write() -> PresignResultJson:
        raise _denied()

    pending: PresignResultJson = {"filename": "f", "key": "k", "status": Status.RETRY}
    (answer,) = Pool(workers=1).run([Entry(pending, write)])
    assert answer["status"] == "retry"
    assert "123456789012" not in json.dumps(answer)
    details = [
        getattr(r, "detail", None) for r in caplog.records if r.getMessage() == "entry_fault"
    ]
    assert details == [_AWS_MESSAGE]


# --- A malformed number anywhere answers 400 -------------------------------------------------

_HUGE = "9" * 5000


def test_a_5000_digit_manifest_size_is_400(memory_deps: Dependencies) -> None:
    manifest = f'[{{"filename": "a.csv", "sha256": "{SHA}", "size": {_HUGE}}}]'.encode()
    for route in ("/upload", "/batch"):
        body, content_type = multipart_body(
            [("file", ("a.csv", DATA, "text/csv")), ("manifest", (None, manifest, "text/plain"))]
        )
        response = handle(rest_event(route, body, content_type=content_type), None, memory_deps)
        assert response["statusCode"] == 400, route
        assert body_of(response)["error"]["code"] == "invalid_manifest"


def test_a_5000_digit_number_in_presign_or_session_never_5xx(memory_deps: Dependencies) -> None:
    presign = f'{{"files": [{{"filename": "a.csv", "sha256": "{SHA}", "size": {_HUGE}}}]}}'
    response = handle(rest_event("/presign", presign, binary=False), None, memory_deps)
    assert response["statusCode"] == 400
    parts = (
        f'{{"files": [{{"filename": "a.csv", "sha256": "{SHA}", "size": 1, "parts": {_HUGE}}}]}}'
    )
    response = handle(rest_event("/presign", parts, binary=False), None, memory_deps)
    assert response["statusCode"] == 400
    session = f'{{"user_id": "alice", "timestamp": "{_TS}", "n": {_HUGE}}}'
    (result,) = body_of(handle(rest_event("/session", session), None, memory_deps))["results"]
    assert result["status"] == "rejected"
    body, content_type = multipart_body([("presign", (None, presign.encode(), "application/json"))])
    (result,) = body_of(
        handle(rest_event("/batch", body, content_type=content_type), None, memory_deps)
    )["results"]
    assert result["status"] == "rejected"


# --- The template: access log, stage throttle, reserved concurrency --------------------------


def test_the_template_logs_access_throttles_the_stage_and_reserves_concurrency() -> None:
    text = TEMPLATE.read_text(encoding="utf-8")
    for parameter in ("StageRateLimit", "StageBurstLimit", "ReservedConcurrency"):
        assert f"  {parameter}:\n    Type: Number\n    Default: " in text, parameter
    assert "AccessLogRetentionDays:\n    Type: Number\n    Default: 30" in text
    assert "ThrottlingRateLimit: !Ref StageRateLimit" in text
    assert "ReservedConcurrentExecutions: !If" in text
    assert "DestinationArn: !GetAtt ApiAccessLogs.Arn" in text
    # The access log names the key's id, never the key.
    assert "$context.identity.apiKeyId" in text
    assert '$context.identity.apiKey"' not in text
    assert "buys a full vCPU" not in text
