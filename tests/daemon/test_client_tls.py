"""TLS failures and the quota: only a failure before the request left counts as `Unreachable`.

A real TLS server on 127.0.0.1 with a throwaway certificate. An `Unreachable` error gives the day's
request back, so it must never be raised once the server may have read the request.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from exportsync.client import BatchRequest, HttpApi
from exportsync.errors import TransientError, Unreachable
from exportsync.transport import Transport

API_KEY = "k3y-SECRET-tls-0123456789"


def _write_cert(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class _BrokenTlsServer:
    """Does the handshake, reads one whole request, then answers with bytes that are not TLS."""

    cert: Path
    port: int
    requests_read: list[bytes] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def broken_tls(tmp_path: Path) -> Iterator[_BrokenTlsServer]:
    cert, key = _write_cert(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    server = _BrokenTlsServer(cert, listener.getsockname()[1])

    def serve() -> None:
        try:
            raw, _ = listener.accept()
        except OSError:
            return
        try:
            with context.wrap_socket(raw, server_side=True) as tls:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += tls.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                while len(body) < length:
                    body += tls.recv(65536)
                server.requests_read.append(head)
                # Plain text where a TLS record belongs: the client fails *after* sending.
                with socket.socket(fileno=os.dup(tls.fileno())) as plain:
                    plain.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}" * 8)
        except (OSError, StopIteration):
            pass
        finally:
            raw.close()
            server.done.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server
    listener.close()
    thread.join(5)


def test_tls_error_after_the_request_was_read_still_counts(broken_tls: _BrokenTlsServer) -> None:
    # Trusts the throwaway certificate; the environment's proxies and CA bundle stay out.
    transport = Transport(ca_certs=str(broken_tls.cert), trust_env=False)
    client = HttpApi(
        f"https://127.0.0.1:{broken_tls.port}/prod", API_KEY, timeout=5.0, transport=transport
    )
    with pytest.raises(TransientError) as info:
        client.batch(BatchRequest(sessions=[b'{"user_id":"u","timestamp":"2024-01-01T00:00:00Z"}']))
    client.close()
    assert broken_tls.done.wait(5)
    assert len(broken_tls.requests_read) == 1  # the server did read the request ...
    # ... so its count must not be given back to the day.
    assert not isinstance(info.value, Unreachable)
    assert API_KEY not in str(info.value)


def test_untrusted_certificate_is_unreachable(broken_tls: _BrokenTlsServer) -> None:
    """The handshake fails before any request byte is sent: no quota is spent."""
    client = HttpApi(f"https://127.0.0.1:{broken_tls.port}/prod", API_KEY, timeout=5.0)
    with pytest.raises(Unreachable):
        client.batch(BatchRequest(sessions=[b'{"user_id":"u","timestamp":"2024-01-01T00:00:00Z"}']))
    client.close()
    assert broken_tls.done.wait(5)
    assert broken_tls.requests_read == []


def test_the_ca_bundle_named_by_the_environment_is_trusted(
    broken_tls: _BrokenTlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REQUESTS_CA_BUNDLE, as requests read it: the handshake passes and the request is sent."""
    for name in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(broken_tls.cert))
    client = HttpApi(f"https://127.0.0.1:{broken_tls.port}/prod", API_KEY, timeout=5.0)
    with pytest.raises(TransientError) as info:
        client.batch(BatchRequest(sessions=[b'{"user_id":"u","timestamp":"2024-01-01T00:00:00Z"}']))
    client.close()
    assert broken_tls.done.wait(5)
    assert len(broken_tls.requests_read) == 1
    assert not isinstance(info.value, Unreachable)
