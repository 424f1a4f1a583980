"""HTTP requests for the client, on urllib3, with what requests took from the environment.

urllib3 (with certifi) is the HTTP library requests itself runs on; used directly it spares the
daemon about 4 MiB of requests, charset_normalizer and http.cookiejar. What requests did by default
is done here the same way:

* TLS is verified against certifi's bundle, or `REQUESTS_CA_BUNDLE` / `CURL_CA_BUNDLE` when set
  (a file, or a directory of hashed certificates);
* proxies come from `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` (lower case first) and `NO_PROXY`
  (names, domain suffixes, IPv4 addresses and CIDR ranges), read at each request, with
  `user:password@` in a proxy URL sent as Basic proxy authorization;
* one keep-alive pool per host (the API and S3 are different hosts), answers read whole and gzip
  or deflate decoded;
* urllib3 never retries and never follows a redirect: the callers own both (a hidden retry would
  spend a request of the day's quota).

Nothing is imported until the first request: an idle daemon never loads urllib3.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Iterable, Mapping, Sized
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    import urllib3

__all__ = ["Transport", "ca_bundle", "proxy_for"]

Body = bytes | IO[bytes] | Iterable[bytes] | None


class Transport:
    """Connection pools for every host the client talks to. `ca_certs` replaces the CA bundle;
    `trust_env=False` ignores the environment's proxies and CA bundle (as requests' `trust_env`)."""

    def __init__(self, *, ca_certs: str | None = None, trust_env: bool = True) -> None:
        self._ca_certs = ca_certs
        self._trust_env = trust_env
        self._managers: dict[str | None, urllib3.PoolManager] = {}

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: Body = None,
        timeout: float,
    ) -> urllib3.BaseHTTPResponse:
        """One request, its answer read whole. Raises urllib3's exceptions as they come (a
        failure to connect wrapped in `MaxRetryError`, one after the request went out bare)."""
        import urllib3  # noqa: PLC0415 -- at first use, see the module's docstring

        sent = dict(headers)
        length = _length(body)
        if length is not None:
            # The body's own length wins over a Content-Length given with it, as in requests:
            # a body shorter than signed is refused by S3, not left waiting for the rest.
            sent = {k: v for k, v in sent.items() if k.lower() != "content-length"}
            sent["Content-Length"] = str(length)
        return self._manager(url).urlopen(
            method,
            url,
            body=body,
            headers=sent,
            # What requests passed: no retry of any kind, a read error raised as it is.
            retries=urllib3.Retry(0, read=False),
            redirect=False,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            preload_content=True,
        )

    def close(self) -> None:
        for manager in self._managers.values():
            manager.clear()
        self._managers.clear()

    def _manager(self, url: str) -> urllib3.PoolManager:
        proxy = proxy_for(url) if self._trust_env else None
        manager = self._managers.get(proxy)
        if manager is None:
            manager = self._managers[proxy] = self._new_manager(proxy)
        return manager

    def _new_manager(self, proxy: str | None) -> urllib3.PoolManager:
        import urllib3  # noqa: PLC0415 -- at first use

        bundle = self._ca_certs or ca_bundle(os.environ if self._trust_env else {})
        tls: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED"}
        tls["ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"] = bundle
        if proxy is None:
            return urllib3.PoolManager(**tls)
        parts = urllib3.util.parse_url(proxy)
        proxy_headers: dict[str, str] = {}
        if parts.auth:
            user, _, password = parts.auth.partition(":")
            proxy_headers = urllib3.util.make_headers(
                proxy_basic_auth=f"{unquote(user)}:{unquote(password)}"
            )
        bare = parts._replace(auth=None).url
        return urllib3.ProxyManager(bare, proxy_headers=proxy_headers, **tls)


def ca_bundle(env: Mapping[str, str]) -> str:
    """The CA bundle requests would verify against: `REQUESTS_CA_BUNDLE`, `CURL_CA_BUNDLE`,
    else certifi's."""
    chosen = env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE")
    if chosen:
        return chosen
    import certifi  # noqa: PLC0415 -- at first use

    return certifi.where()


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url`, as requests picks it: the scheme's own, else
    `ALL_PROXY`; none for a host `NO_PROXY` lists."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return None
    if not _may_name_proxy(os.environ):
        return None  # what getproxies() finds there: nothing, without loading urllib.request
    from urllib.request import getproxies, proxy_bypass  # noqa: PLC0415 -- a proxy is named

    proxies = getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or _in_networks(host, proxies.get("no", "")):
        return None
    # With its port, so that `NO_PROXY=host:port` matches too (urllib tries both).
    target = f"{host}:{parts.port}" if parts.port and ":" not in host else host
    try:
        if proxy_bypass(target):
            return None
    except OSError:  # the macOS lookup may resolve the name
        pass
    return proxy if "://" in proxy else f"http://{proxy}"


def _may_name_proxy(environ: Mapping[str, str]) -> bool:
    """False where `getproxies()` can only find nothing: it reads the environment alone (not on
    macOS or Windows, which also ask the system) and no variable there ends in ``_proxy`` (any
    case). urllib.request (about 0.5 MiB with what it imports) is then never loaded."""
    if sys.platform in ("darwin", "win32"):
        return True
    return any(name[-6:].lower() == "_proxy" for name in environ)


def _in_networks(host: str, no_proxy: str) -> bool:
    """True for an IPv4 address inside a CIDR range of `NO_PROXY` (urllib matches names only)."""
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        return False
    for entry in no_proxy.replace(" ", "").split(","):
        if "/" in entry:
            try:
                if address in ipaddress.IPv4Network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


def _length(body: Body) -> int | None:
    """The body's length when it can be known without reading it (sent as Content-Length, as
    requests did: S3 refuses a chunked PUT); None streams it chunked."""
    if body is None:
        return None
    if isinstance(body, bytes | bytearray | memoryview):
        return len(body)
    if isinstance(body, Sized):
        return len(body)
    tell, seek = getattr(body, "tell", None), getattr(body, "seek", None)
    if tell is None or seek is None:
        return None
    try:
        here = tell()
        end = seek(0, os.SEEK_END)
        seek(here)
    except (OSError, ValueError):
        return None
    return int(end) - int(here)
