"""The HTTP client: `classify` for every gateway and Lambda answer, `HttpApi` against a real server.

The server is a stdlib ThreadingHTTPServer on 127.0.0.1 that answers from a script and records
every request it reads, so the tests see exactly what went over the wire.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import io
import json
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import certifi
import multipart
import pytest

from exportsync.client import (
    BatchFile,
    BatchRequest,
    HttpApi,
    PresignFile,
    classify,
    completion_xml,
)
from exportsync.errors import (
    DeliveryError,
    Forbidden,
    PermanentError,
    QuotaExhausted,
    Redirected,
    RequestTooLarge,
    Throttled,
    TransientError,
    Unreachable,
)
from exportsync.fs import files
from exportsync.sessions import encode_json
from exportsync.transport import ca_bundle, proxy_for

API_KEY = "k3y-SECRET-do-not-print-0123456789"


# -- classify -----------------------------------------------------------------------------------


def _gateway(message: str) -> bytes:
    return json.dumps({"message": message}).encode()


def _lambda_error(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


@pytest.mark.parametrize(
    ("status", "body", "kind", "text"),
    [
        (403, _gateway("Forbidden"), Forbidden, "Forbidden"),
        (429, _gateway("Too Many Requests"), Throttled, "Too Many Requests"),
        (429, _gateway("Limit Exceeded"), QuotaExhausted, "Limit Exceeded"),
        (413, _gateway("Request Too Long"), RequestTooLarge, "Request Too Long"),
        (500, _gateway("Internal server error"), TransientError, "Internal server error"),
        (502, _gateway("Internal server error"), TransientError, "Internal server error"),
        (503, _gateway("Service Unavailable"), TransientError, "Service Unavailable"),
        (504, _gateway("Endpoint request timed out"), TransientError, "timed out"),
        (400, _lambda_error("bad_multipart", "no boundary"), PermanentError, "no boundary"),
        (422, _lambda_error("nothing_valid", "every file rejected"), PermanentError, "rejected"),
        (404, _lambda_error("not_found", "no such route"), PermanentError, "no such route"),
    ],
    ids=[
        "403",
        "429-throttled",
        "429-quota",
        "413",
        "500",
        "502",
        "503",
        "504",
        "400-lambda",
        "422-lambda",
        "404-lambda",
    ],
)
def test_classify_every_answer_in_the_contract(
    status: int, body: bytes, kind: type[DeliveryError], text: str
) -> None:
    error = classify(status, body)
    assert type(error) is kind
    assert text in str(error)
    assert error.status == status


def test_classify_lambda_error_carries_code_and_message() -> None:
    error = classify(400, _lambda_error("invalid_json", "body is not valid UTF-8 JSON"))
    assert isinstance(error, PermanentError)
    assert not error.retryable
    assert str(error) == "invalid_json: body is not valid UTF-8 JSON"


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_classify_success_is_none(status: int) -> None:
    assert classify(status, b'{"results": []}') is None


def test_classify_quota_message_is_matched_case_insensitively() -> None:
    assert isinstance(classify(429, _gateway("limit exceeded")), QuotaExhausted)
    assert isinstance(classify(429, b""), Throttled)  # no body: the safe, short pause


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b"", "HTTP 502"),
        (b"<html>Bad Gateway</html>", "Bad Gateway"),
        (b"\xff\xfe not json", "not json"),
        (b"[1, 2]", "HTTP 502"),
        (b'{"Message": "capital M"}', "capital M"),
    ],
)
def test_classify_copes_with_bodies_that_are_not_the_usual_json(body: bytes, text: str) -> None:
    error = classify(502, body)
    assert isinstance(error, TransientError)
    assert text in str(error)


def test_classify_retryability_follows_the_tree() -> None:
    assert classify(408, b"")
    assert isinstance(classify(408, b""), TransientError)
    retryable = {
        status: error.retryable
        for status in (400, 403, 413, 429, 500)
        if (error := classify(status, b"")) is not None
    }
    assert retryable == {400: False, 403: True, 413: False, 429: True, 500: True}


# -- a scripted HTTP server on loopback -----------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int = 0  # the client's end of the connection: the same one means kept alive


@dataclass
class Reply:
    """What the server does with the next request: answer, hang up, or never answer."""

    status: int = 200
    body: bytes = b""
    action: str = "answer"  # "answer" | "close" | "hang"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ScriptedServer:
    url: str
    requests: list[Recorded] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, *replies: Reply) -> None:
        with self.lock:
            self.replies.extend(replies)

    def answer(self, payload: Any, status: int = 200) -> None:
        self.script(Reply(status, json.dumps(payload).encode()))

    def next_reply(self) -> Reply:
        with self.lock:
            return self.replies.pop(0) if self.replies else Reply(500, b'{"message": "unscripted"}')


def _handler(state: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            body = self._body()
            with state.lock:
                state.requests.append(
                    Recorded(
                        self.command,
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                        self.client_address[1],
                    )
                )
            reply = state.next_reply()
            if reply.action == "close":
                self.close_connection = True
                return
            if reply.action == "hang":
                state.release.wait(30)
                self.close_connection = True
                return
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()  # the blank line after the last chunk
            return b"".join(chunks)

        do_POST = _serve  # noqa: N815 -- BaseHTTPRequestHandler's naming
        do_PUT = _serve  # noqa: N815 -- BaseHTTPRequestHandler's naming

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request (as some tests make it do) is not news."""


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    state = ScriptedServer("")
    httpd = _QuietServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/prod"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def api(server: ScriptedServer) -> Iterator[HttpApi]:
    client = HttpApi(server.url, API_KEY, timeout=5.0, user_id="alice")
    yield client
    client.close()


def _parts(request: Recorded) -> list[Any]:
    content_type = request.headers["content-type"]
    mime, options = multipart.parse_options_header(content_type)
    assert mime == "multipart/form-data"
    parser = multipart.MultipartParser(io.BytesIO(request.body), options["boundary"], strict=True)
    parts: list[Any] = parser.parts()
    return parts


# -- HttpApi: what goes over the wire ------------------------------------------------------------


def test_batch_sends_the_key_and_exact_decimals(server: ScriptedServer, api: HttpApi) -> None:
    sessions = [
        encode_json({"user_id": "alice", "timestamp": "2024-05-01", "x": Decimal("0.1")}),
        encode_json({"user_id": "alice", "timestamp": "2024-05-02", "x": Decimal("1E+400")}),
    ]
    results = [{"kind": "session", "status": "stored"} for _ in sessions]
    server.answer({"results": results})

    assert api.batch(BatchRequest(sessions=sessions)) == results

    [request] = server.requests
    assert request.headers["x-api-key"] == API_KEY
    assert request.headers["user-agent"].startswith("exportsync/")
    [part] = [p for p in _parts(request) if p.name == "session"]
    assert b'"x":0.1}' in part.raw
    assert b'"x":1E+400}' in part.raw
    assert json.loads(part.raw, parse_float=Decimal) == [
        {"user_id": "alice", "timestamp": "2024-05-01", "x": Decimal("0.1")},
        {"user_id": "alice", "timestamp": "2024-05-02", "x": Decimal("1E+400")},
    ]


def test_batch_without_a_user_id_sends_no_user_id_part(server: ScriptedServer) -> None:
    client = HttpApi(server.url, API_KEY, timeout=5.0)
    server.answer({"results": [{"kind": "file", "status": "stored"}]})
    client.batch(_one_file())
    client.close()
    assert "user_id" not in {p.name for p in _parts(server.requests[0])}


def _one_file() -> BatchRequest:
    return BatchRequest(files=[BatchFile("a.csv", b"x", "aa" * 32, 1)])


def _one_ask() -> BatchRequest:
    return BatchRequest(presign=[PresignFile("a.csv", "aa" * 32, 1)])


def test_put_presigned_sends_exact_headers_and_never_the_api_key(
    server: ScriptedServer, api: HttpApi
) -> None:
    base = server.url.removesuffix("/prod")
    server.script(Reply(200, b""))
    headers = {"x-amz-checksum-sha256": "q80=", "Content-Type": "text/csv"}

    api.put_presigned(f"{base}/bucket/key?X-Amz-Signature=abc", headers, [b"id,v\n", b"1,2\n"])

    [request] = server.requests
    assert (request.method, request.path) == ("PUT", "/bucket/key?X-Amz-Signature=abc")
    assert "x-api-key" not in request.headers
    assert API_KEY not in json.dumps(request.headers)
    assert request.headers["x-amz-checksum-sha256"] == "q80="
    assert request.headers["content-type"] == "text/csv"
    assert request.body == b"id,v\n1,2\n"


def test_put_presigned_streams_a_file_object(server: ScriptedServer, api: HttpApi) -> None:
    base = server.url.removesuffix("/prod")
    server.script(Reply(200, b""))
    api.put_presigned(f"{base}/b/k", {"Content-Length": "6"}, io.BytesIO(b"abcdef"))
    assert server.requests[0].body == b"abcdef"
    assert "x-api-key" not in server.requests[0].headers


def test_put_presigned_streams_a_generator(server: ScriptedServer, api: HttpApi) -> None:
    base = server.url.removesuffix("/prod")
    server.script(Reply(200, b""))
    api.put_presigned(f"{base}/b/k", {}, (chunk for chunk in (b"ab", b"cd")))
    assert server.requests[0].body == b"abcd"


def test_a_body_that_fails_mid_stream_raises_its_own_error(
    server: ScriptedServer, api: HttpApi, tmp_path: Path
) -> None:
    """A file that shrinks during the PUT surfaces as FileChanged, which delivery handles."""
    path = tmp_path / "big.csv"
    path.write_bytes(b"x" * 100_000)
    stream = files.open_verified_stream(tmp_path, path, "00" * 32, 100_000)
    path.write_bytes(b"x" * 10)  # truncated after the snapshot: the stream ends early
    base = server.url.removesuffix("/prod")
    server.script(Reply(200, b""))
    with stream, pytest.raises(files.FileChanged):
        api.put_presigned(f"{base}/b/k", {}, stream)


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (403, "SignatureDoesNotMatch", TransientError),
        (500, "InternalError", TransientError),
        (503, "SlowDown", TransientError),
        (400, "InvalidArgument", PermanentError),
        # Bytes that did not arrive as signed: the transfer failed, not the file.
        (400, "BadDigest", TransientError),
        (400, "XAmzContentSHA256Mismatch", TransientError),
        (400, "IncompleteBody", TransientError),
    ],
)
def test_put_presigned_failures(
    server: ScriptedServer, api: HttpApi, status: int, code: str, kind: type[DeliveryError]
) -> None:
    base = server.url.removesuffix("/prod")
    server.script(Reply(status, f"<Error><Code>{code}</Code></Error>".encode()))
    with pytest.raises(kind) as info:
        api.put_presigned(f"{base}/b/k", {}, io.BytesIO(b"x"))
    assert type(info.value) is kind
    assert info.value.status == status


# -- HttpApi: failures --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (403, _gateway("Forbidden"), Forbidden),
        (429, _gateway("Too Many Requests"), Throttled),
        (429, _gateway("Limit Exceeded"), QuotaExhausted),
        (413, _gateway("Request Too Long"), RequestTooLarge),
        (502, _gateway("Internal server error"), TransientError),
        (422, _lambda_error("nothing_valid", "no valid file"), PermanentError),
    ],
)
def test_error_answers_raise_the_classified_error(
    server: ScriptedServer, api: HttpApi, status: int, body: bytes, kind: type[DeliveryError]
) -> None:
    server.script(Reply(status, body))
    with pytest.raises(kind) as info:
        api.batch(_one_file())
    assert type(info.value) is kind
    assert info.value.status == status


def test_timeout_is_transient(server: ScriptedServer) -> None:
    client = HttpApi(server.url, API_KEY, timeout=0.3)
    server.script(Reply(action="hang"))
    with pytest.raises(TransientError, match="no answer within") as info:
        client.batch(BatchRequest(sessions=[b'{"user_id":"u","timestamp":"t"}']))
    client.close()
    assert info.value.status is None


def test_connection_closed_without_answer_is_transient(
    server: ScriptedServer, api: HttpApi
) -> None:
    server.script(Reply(action="close"))
    with pytest.raises(TransientError, match="connection failed") as info:
        api.batch(_one_ask())
    assert len(server.requests) == 1  # one request, not silently retried
    # The server saw this one: it must count against the quota, unlike a refused connection.
    assert not isinstance(info.value, Unreachable)


def test_nothing_listening_is_unreachable_so_no_quota_is_spent() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connection refused
        client = HttpApi(f"http://127.0.0.1:{port}/prod", API_KEY, timeout=2.0)
        with pytest.raises(Unreachable, match="cannot connect"):
            client.batch(_one_ask())
        client.close()


@pytest.mark.parametrize(
    "body",
    [
        b'{"results": []}',  # one file sent, no result
        b'{"results": [{"status": "stored"}, {"status": "stored"}]}',  # too many
        b'{"results": ["stored"]}',  # not objects
        b'{"results": {"0": {}}}',
        b'[{"status": "stored"}]',
        b"not json",
        b"",
    ],
    ids=["short", "long", "strings", "object", "bare-list", "not-json", "empty"],
)
def test_malformed_200_is_transient(server: ScriptedServer, api: HttpApi, body: bytes) -> None:
    server.script(Reply(200, body))
    with pytest.raises(TransientError):
        api.batch(_one_file())


# -- the key never shows ------------------------------------------------------------------------


def _every_text(exc: BaseException) -> str:
    """str, repr and the whole formatted traceback, causes included."""
    return "\n".join(
        [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
        + ([repr(exc.__cause__), str(exc.__cause__)] if exc.__cause__ else [])
    )


def test_the_api_key_never_appears_in_reprs_or_errors(server: ScriptedServer) -> None:
    client = HttpApi(server.url, API_KEY, timeout=0.3, user_id="alice")
    assert API_KEY not in repr(client)
    assert API_KEY not in str(client)
    server.script(
        Reply(403, _gateway("Forbidden")),
        Reply(429, _gateway("Limit Exceeded")),
        Reply(500, b"oops"),
        Reply(200, b"{}"),
        Reply(action="close"),
        Reply(action="hang"),
        Reply(400, b'{"error": {"code": "x", "message": "y"}}'),
    )
    calls: list[Callable[[], object]] = [
        lambda: client.batch(_one_file()),
        lambda: client.batch(BatchRequest(sessions=[b"{}"])),
        lambda: client.batch(_one_ask()),
        lambda: client.batch(_one_ask()),
        lambda: client.batch(_one_ask()),
        lambda: client.batch(_one_ask()),
        lambda: client.put_presigned(server.url + "/s3", {}, io.BytesIO(b"x")),
    ]
    for call in calls:
        with pytest.raises(DeliveryError) as info:
            call()
        assert API_KEY not in _every_text(info.value)
    client.close()
    assert len(server.requests) == len(calls)


# -- POST /batch ----------------------------------------------------------------------------------


def test_batch_sends_files_sessions_and_presign_asks_in_one_multipart_request(
    server: ScriptedServer, api: HttpApi
) -> None:
    plain = BatchFile("a.csv", b"id,v\n1,2\n", "aa" * 32, 9)
    packed_data = b"x,y\n" * 5000
    packed = BatchFile("b.csv", gzip.compress(packed_data), "bb" * 32, len(packed_data), "gzip")
    sessions = [encode_json({"user_id": "alice", "timestamp": "2024-05-01", "x": Decimal("0.1")})]
    asks = [
        PresignFile("big.csv", "cc" * 32, 500_000_000, parts=30),
        PresignFile("m.csv", "dd" * 32, 9),
    ]
    results = [
        {"kind": "file", "status": "stored"},
        {"kind": "file", "status": "stored"},
        {"kind": "session", "status": "stored"},
        {"kind": "presign", "status": "multipart"},
        {"kind": "presign", "status": "upload"},
    ]
    server.answer({"results": results})

    request = BatchRequest(files=[plain, packed], sessions=sessions, presign=asks)
    assert api.batch(request) == results

    [sent] = server.requests
    assert (sent.method, sent.path) == ("POST", "/prod/batch")
    assert sent.headers["x-api-key"] == API_KEY
    parts = _parts(sent)
    file_parts = [p for p in parts if p.name == "file"]
    assert [(p.filename, p.raw) for p in file_parts] == [
        ("a.csv", plain.data),
        ("b.csv", packed.data),
    ]
    assert gzip.decompress(file_parts[1].raw) == packed_data
    [manifest] = [json.loads(p.value) for p in parts if p.name == "manifest"]
    assert manifest == [
        {"filename": "a.csv", "sha256": "aa" * 32, "size": 9},
        {"filename": "b.csv", "sha256": "bb" * 32, "size": len(packed_data), "encoding": "gzip"},
    ]
    [session_part] = [p for p in parts if p.name == "session"]
    assert session_part.content_type == "application/json"
    assert b'"x":0.1}' in session_part.raw
    assert json.loads(session_part.raw) == [
        {"user_id": "alice", "timestamp": "2024-05-01", "x": 0.1}
    ]
    [presign_part] = [p for p in parts if p.name == "presign"]
    assert presign_part.content_type == "application/json"
    assert json.loads(presign_part.raw) == {
        "files": [
            {"filename": "big.csv", "sha256": "cc" * 32, "size": 500_000_000, "parts": 30},
            {"filename": "m.csv", "sha256": "dd" * 32, "size": 9},
        ]
    }
    [user] = [p.value for p in parts if p.name == "user_id"]
    assert user == "alice"


def test_batch_wants_one_result_per_entry(server: ScriptedServer, api: HttpApi) -> None:
    server.answer({"results": [{"kind": "session", "status": "stored"}]})
    with pytest.raises(TransientError):
        api.batch(BatchRequest(sessions=[b"{}", b"{}"]))


def test_put_presigned_returns_the_etag_and_completion_posts_the_xml(
    server: ScriptedServer, api: HttpApi
) -> None:
    base = server.url.removesuffix("/prod")
    server.script(
        Reply(200, b"", headers={"ETag": '"abc"'}), Reply(200, b"<CompleteMultipartUploadResult/>")
    )
    etag = api.put_presigned(f"{base}/b/k?partNumber=1", {}, io.BytesIO(b"part"))
    assert etag == '"abc"'
    api.complete_multipart(f"{base}/b/k?uploadId=u", completion_xml([(2, '"e2"'), (1, '"e1"')]))
    completion = server.requests[1]
    assert completion.method == "POST"
    assert "x-api-key" not in completion.headers
    assert completion.body == (
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;e1&quot;</ETag>"
        b"</Part><Part><PartNumber>2</PartNumber><ETag>&quot;e2&quot;</ETag></Part>"
        b"</CompleteMultipartUpload>"
    )


def test_a_completion_answered_200_with_an_error_is_transient(
    server: ScriptedServer, api: HttpApi
) -> None:
    base = server.url.removesuffix("/prod")
    server.script(Reply(200, b"<Error><Code>InternalError</Code></Error>"))
    with pytest.raises(TransientError):
        api.complete_multipart(f"{base}/b/k?uploadId=u", b"<CompleteMultipartUpload/>")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_never_followed_and_names_no_key(
    server: ScriptedServer, api: HttpApi, status: int
) -> None:
    """The key goes to the configured API only: a redirect elsewhere is an error, not a hop."""
    server.script(Reply(status, b"", headers={"Location": server.url + "/elsewhere?x=1"}))
    with pytest.raises(Redirected) as info:
        api.batch(BatchRequest(sessions=[b"{}"]))
    assert [r.path for r in server.requests] == ["/prod/batch"]
    assert info.value.retryable
    assert str(status) in str(info.value)
    assert "127.0.0.1" in str(info.value)
    assert "x=1" not in str(info.value)  # only where it points, not the query
    assert API_KEY not in _every_text(info.value)


def test_a_redirected_presigned_put_is_not_followed(server: ScriptedServer, api: HttpApi) -> None:
    server.script(Reply(307, b"", headers={"Location": server.url + "/other"}))
    with pytest.raises(DeliveryError):
        api.put_presigned(server.url + "/s3", {}, io.BytesIO(b"x"))
    assert [r.path for r in server.requests] == ["/prod/s3"]


def test_a_redirected_completion_is_not_followed(server: ScriptedServer, api: HttpApi) -> None:
    """Like every request of the client: a presigned URL answered 3xx is an error, not a hop."""
    server.script(Reply(307, b"", headers={"Location": server.url + "/other"}))
    with pytest.raises(DeliveryError):
        api.complete_multipart(server.url + "/s3?uploadId=u", b"<CompleteMultipartUpload/>")
    assert [r.path for r in server.requests] == ["/prod/s3?uploadId=u"]


def test_requests_to_one_host_share_a_kept_alive_connection(
    server: ScriptedServer, api: HttpApi
) -> None:
    base = server.url.removesuffix("/prod")
    server.answer({"results": [{"kind": "file", "status": "stored"}]})
    server.script(Reply(200, b"", headers={"ETag": '"e"'}))
    server.answer({"results": [{"kind": "file", "status": "stored"}]})
    api.batch(_one_file())
    api.put_presigned(f"{base}/b/k", {}, io.BytesIO(b"x"))
    api.batch(_one_file())
    assert len({r.client_port for r in server.requests}) == 1


def test_a_large_streamed_body_goes_with_its_length_and_in_pieces(
    server: ScriptedServer, api: HttpApi, tmp_path: Path
) -> None:
    """A file is streamed from disk (read in blocks, never whole) with a Content-Length, which a
    presigned S3 PUT needs."""
    path = tmp_path / "big.csv"
    path.write_bytes(b"0123456789" * 100_000)
    reads: list[int] = []

    class Counted(io.FileIO):
        def read(self, size: int | None = -1) -> bytes:
            reads.append(-1 if size is None else size)
            return super().read(size)

    base = server.url.removesuffix("/prod")
    server.script(Reply(200, b""))
    with Counted(path) as stream:
        api.put_presigned(f"{base}/b/k", {}, stream)
    [request] = server.requests
    assert request.headers["content-length"] == "1000000"
    assert "transfer-encoding" not in request.headers
    assert request.body == path.read_bytes()
    assert reads
    assert all(0 < size < 1_000_000 for size in reads)


# -- proxies and the CA bundle from the environment ---------------------------------------------

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("env", "url", "expected"),
    [
        ({}, "https://api.example.com/prod", None),
        ({"HTTPS_PROXY": "http://p:3128"}, "https://api.example.com/prod", "http://p:3128"),
        ({"HTTPS_PROXY": "http://p:3128"}, "http://127.0.0.1:8000/prod", None),
        ({"HTTP_PROXY": "http://p:3128"}, "http://127.0.0.1:8000/prod", "http://p:3128"),
        # lower case first, as requests and curl read them
        (
            {"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2"},
            "https://api.example.com/",
            "http://lower:2",
        ),
        ({"ALL_PROXY": "http://all:1"}, "https://s3.example.com/b/k", "http://all:1"),
        (
            {"ALL_PROXY": "http://all:1", "HTTPS_PROXY": "http://p:2"},
            "https://s3.example.com/",
            "http://p:2",
        ),
        ({"HTTPS_PROXY": "p:3128"}, "https://api.example.com/", "http://p:3128"),  # no scheme
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "example.com"},
            "https://api.example.com/",
            None,
        ),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": ".example.com"},
            "https://s3.example.com/",
            None,
        ),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "other.com, example.org"},
            "https://api.example.com/",
            "http://p:1",
        ),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*"}, "https://api.example.com/", None),
        ({"HTTP_PROXY": "http://p:1", "no_proxy": "10.0.0.0/8"}, "http://10.1.2.3/prod", None),
        (
            {"HTTP_PROXY": "http://p:1", "no_proxy": "10.0.0.0/8"},
            "http://11.1.2.3/prod",
            "http://p:1",
        ),
        (
            {"HTTP_PROXY": "http://p:1", "NO_PROXY": "127.0.0.1:8000"},
            "http://127.0.0.1:8000/",
            None,
        ),
    ],
)
def test_the_proxy_is_chosen_from_the_environment_as_requests_chose_it(
    clean_env: pytest.MonkeyPatch, env: dict[str, str], url: str, expected: str | None
) -> None:
    for name, value in env.items():
        clean_env.setenv(name, value)
    assert proxy_for(url) == expected


def test_the_ca_bundle_is_certifis_unless_the_environment_names_one() -> None:
    assert ca_bundle({}) == certifi.where()
    assert ca_bundle({"CURL_CA_BUNDLE": "/c.pem"}) == "/c.pem"
    assert ca_bundle({"REQUESTS_CA_BUNDLE": "/r.pem", "CURL_CA_BUNDLE": "/c.pem"}) == "/r.pem"


@dataclass
class ForwardProxy:
    """A plain HTTP forward proxy on loopback that records what it forwards."""

    url: str = ""
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    state = ForwardProxy()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.seen.append((self.command, self.path, self.headers.get("Proxy-Authorization")))
            target = urlsplit(self.path)  # a forward proxy is sent the absolute URL
            passed = {
                k: v
                for k, v in self.headers.items()
                if k.lower() not in ("proxy-authorization", "proxy-connection", "connection")
            }
            upstream = http.client.HTTPConnection(target.hostname or "", target.port, timeout=10)
            try:
                path = target.path + (f"?{target.query}" if target.query else "")
                upstream.request(self.command, path, body=body, headers=passed)
                answer = upstream.getresponse()
                data = answer.read()
            finally:
                upstream.close()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in ("connection", "content-length", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = _forward  # noqa: N815 -- BaseHTTPRequestHandler's naming
        do_PUT = _forward  # noqa: N815 -- BaseHTTPRequestHandler's naming

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = _QuietServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_requests_go_through_the_environments_proxy_with_its_credentials(
    server: ScriptedServer, proxy: ForwardProxy, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("HTTP_PROXY", proxy.url.replace("http://", "http://user:p%40ss@"))
    client = HttpApi(server.url, API_KEY, timeout=5.0)
    base = server.url.removesuffix("/prod")
    server.answer({"results": [{"kind": "file", "status": "stored"}]})
    server.script(Reply(200, b"", headers={"ETag": '"e"'}))

    client.batch(_one_file())
    assert client.put_presigned(f"{base}/b/k?X-Amz-Signature=s", {}, io.BytesIO(b"abc")) == '"e"'
    client.close()

    auth = "Basic " + base64.b64encode(b"user:p@ss").decode()
    assert proxy.seen == [
        ("POST", server.url + "/batch", auth),
        ("PUT", f"{base}/b/k?X-Amz-Signature=s", auth),
    ]
    batch, put = server.requests
    assert batch.headers["x-api-key"] == API_KEY
    assert "x-api-key" not in put.headers
    assert put.body == b"abc"
    assert not any("proxy" in name for r in server.requests for name in r.headers)


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "127.0.0.0/8", "*"])
def test_a_host_no_proxy_names_is_reached_directly(
    server: ScriptedServer, proxy: ForwardProxy, clean_env: pytest.MonkeyPatch, no_proxy: str
) -> None:
    clean_env.setenv("HTTP_PROXY", proxy.url)
    clean_env.setenv("NO_PROXY", no_proxy)
    client = HttpApi(server.url, API_KEY, timeout=5.0)
    server.answer({"results": [{"kind": "file", "status": "stored"}]})
    client.batch(_one_file())
    client.close()
    assert proxy.seen == []
    assert [r.path for r in server.requests] == ["/prod/batch"]


def test_a_proxy_that_refuses_the_connection_is_a_transient_failure(
    server: ScriptedServer, clean_env: pytest.MonkeyPatch
) -> None:
    """As with requests: the proxy was not reached, and nothing was sent to the API."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        clean_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{sock.getsockname()[1]}")
        client = HttpApi(server.url, API_KEY, timeout=2.0)
        with pytest.raises(TransientError) as info:
            client.batch(_one_ask())
        client.close()
    assert type(info.value) is TransientError
    assert API_KEY not in _every_text(info.value)
    assert server.requests == []


def test_the_bodys_own_length_wins_over_a_content_length_given_with_it(
    server: ScriptedServer, api: HttpApi
) -> None:
    """As requests sent it: a body shorter than its signed length goes with its own length (S3
    refuses it at once) instead of leaving the server waiting for bytes that never come."""
    base = server.url.removesuffix("/prod")
    server.script(Reply(200, b""))
    api.put_presigned(f"{base}/b/k", {"content-length": "10"}, [b"short"])
    [request] = server.requests
    assert request.headers["content-length"] == "5"
    assert request.body == b"short"
