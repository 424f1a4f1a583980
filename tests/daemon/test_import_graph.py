"""The daemon's import graph, read from the source: cli -> daemon -> intake/delivery ->
spool/client, with no upward arrow, and the light modules kept light."""

from __future__ import annotations

import ast
import functools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "daemon" / "exportsync"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _graph() -> dict[str, set[str]]:
    """Each exportsync module and what it imports by statement (lazy `importlib` calls are not
    arrows): exportsync modules by full name, others by their top-level name."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    found.add(submodule if submodule in modules else node.module)
        graph[name] = {
            item if item.startswith("exportsync.") else item.split(".")[0] for item in found
        }
    return graph


def _runtime_nodes(node: ast.AST) -> list[ast.AST]:
    """Every node but those under `if TYPE_CHECKING:` (read by mypy, never imported)."""
    out: list[ast.AST] = [node]
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and ast.unparse(child.test) == "TYPE_CHECKING":
            continue
        out += _runtime_nodes(child)
    return out


def _is_cli(name: str) -> bool:
    return name == "exportsync.cli" or name.startswith("exportsync.cli.")


def _reaches(start: str) -> set[str]:
    graph, seen, todo = _graph(), set(), [start]
    while todo:
        for item in graph.get(todo.pop(), ()):
            if item not in seen:
                seen.add(item)
                todo.append(item)
    return seen


def test_nothing_below_the_command_line_imports_it() -> None:
    upward = {
        name: sorted(i for i in imports if _is_cli(i))
        for name, imports in _graph().items()
        if not _is_cli(name) and name != "exportsync.__main__"
    }
    assert {name: found for name, found in upward.items() if found} == {}


@pytest.mark.parametrize(
    ("module", "never"),
    [
        # The config reads its defaults from its own fields and exportsync_wire.limits.
        ("exportsync.config", {"exportsync.batches", "exportsync.client", "requests"}),
        # `status` reads the spool; it needs none of the running daemon.
        (
            "exportsync.status",
            {
                "exportsync.daemon",
                "exportsync.watcher",
                "exportsync.delivery",
                "exportsync.sender",
                "exportsync.answers",
            },
        ),
        # The spool's stores sit below everything that uses them.
        ("exportsync.spool", {"exportsync.delivery", "exportsync.intake", "exportsync.client"}),
        # The parts of the delivery step below it never reach back up to the step.
        ("exportsync.batcher", {"exportsync.delivery", "exportsync.sender"}),
        ("exportsync.outcomes", {"exportsync.delivery", "exportsync.batcher", "exportsync.sender"}),
        ("exportsync.wiring", {"exportsync.daemon"}),
        # The daemon's HTTP client is urllib3: requests is for the tests, bench and devstack.
        ("exportsync.daemon", {"requests", "charset_normalizer"}),
        ("exportsync.wiring", {"requests", "charset_normalizer"}),
        # `run` carries no other command's imports.
        ("exportsync.cli.run", {"shtab", "exportsync.firstrun", "exportsync.service"}),
        ("exportsync.cli", {"exportsync.daemon", "shtab"}),
    ],
)
def test_a_module_does_not_reach(module: str, never: set[str]) -> None:
    assert _reaches(module) & never == set()


# Loaded at first use only: an idle daemon with metrics off never needs them (README
# "Performance", idle RSS).
_LAZY = ("requests", "urllib3", "certifi", "prometheus_client", "tenacity", "gzip", "wsgiref")
# Never loaded by a daemon started with --config, metrics off and no proxy in its environment, not
# even once it delivered (README "While delivering", idle RSS): asyncio (with ssl, subprocess)
# came with structlog, urllib.request with the proxy lookup, platformdirs with the config's
# default paths, difflib with a mistyped key's suggestion, secrets with a move after delivery.
_NEVER = ("asyncio", "urllib.request", "platformdirs", "difflib", "secrets")
# Loaded by urllib3 at the first request, so not at READY.
_AT_FIRST_REQUEST = ("ssl",)

_IDLE_DAEMON = """
import sys, threading
from exportsync.cli.run import command  # what `exportsync run` imports
from exportsync.config import load_config
from exportsync.daemon import Daemon
from exportsync.wiring import build_api

config = load_config(None, env={}, overrides={
    "watch.dir": sys.argv[1], "state.dir": sys.argv[2], "api.api_key": "k-not-used",
    "api.url": "http://127.0.0.1:9/unused", "api.user_id": "alice",
})
daemon = Daemon(config, api=build_api(config))
ready = threading.Event()
daemon.notifier.ready = lambda status=None: ready.set() or True
runner = threading.Thread(target=daemon.run)
runner.start()
assert ready.wait(60), "never ready"
loaded = sorted(m for m in %r if m in sys.modules)
daemon.stop()
runner.join(60)
print("loaded:", *loaded)
"""


def test_an_idle_daemon_without_metrics_loads_no_http_metrics_or_retry_library(
    tmp_path: Path,
) -> None:
    """The real `HttpApi` and the whole daemon, started over an empty folder with metrics off:
    urllib3, prometheus_client, tenacity and gzip stay unloaded until something needs them, and
    asyncio, ssl, urllib.request, platformdirs, difflib and secrets are not loaded either."""
    (tmp_path / "export").mkdir()
    script = _IDLE_DAEMON % ((*_LAZY, *_NEVER, *_AT_FIRST_REQUEST),)
    lines = _probe(script, str(tmp_path / "export"), str(tmp_path / "state"))
    assert lines["loaded"].split() == []


# A real delivery by the whole daemon with its real client, to a loopback API in the same process:
# the HTTP client is urllib3 alone (requests stays a tool of the tests, the bench and the devstack).
_DELIVERING_DAEMON = """
import json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from exportsync.cli.run import command  # what `exportsync run` imports
from exportsync.config import load_config
from exportsync.daemon import Daemon
from exportsync.spool import Spool
from exportsync.wiring import build_api

seen = []

class Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        seen.append((self.path, self.headers.get("x-api-key")))
        body = json.dumps({"results": [{"kind": "file", "status": "stored", "key": "k/a.csv"}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
threading.Thread(target=server.serve_forever, daemon=True).start()
config = load_config(None, env={}, overrides={
    "watch.dir": sys.argv[1], "state.dir": sys.argv[2], "api.api_key": "k-loopback",
    "api.url": f"http://127.0.0.1:{server.server_address[1]}/prod", "api.user_id": "alice",
    "quota.daily_requests": 0, "quota.quiet_seconds": 0,
})
daemon = Daemon(config, api=build_api(config))
runner = threading.Thread(target=daemon.run)
runner.start()
Path(sys.argv[1], "a.csv").write_bytes(b"id,v\\n1,2\\n")
deadline = time.monotonic() + 60
with Spool.open(Path(sys.argv[2])) as spool:
    while spool.counts().get("delivered", 0) < 1:
        assert time.monotonic() < deadline, "never delivered"
        time.sleep(0.05)
daemon.stop()
runner.join(60)
print("seen:", *[path for path, key in seen if key == "k-loopback"])
watched = ("requests", "charset_normalizer", "urllib3")
print("loaded:", *sorted(m for m in watched if m in sys.modules))
print("never:", *sorted(m for m in %r if m in sys.modules))
"""


def test_a_delivering_daemon_never_loads_requests(tmp_path: Path) -> None:
    """The whole daemon delivers a file over its real client: urllib3 is loaded, requests not,
    and neither is anything in `_NEVER`."""
    (tmp_path / "export").mkdir()
    lines = _probe(
        _DELIVERING_DAEMON % (_NEVER,), str(tmp_path / "export"), str(tmp_path / "state")
    )
    assert lines["seen"].split() == ["/prod/batch"]
    assert lines["loaded"].split() == ["urllib3"]  # the client ran, and on urllib3 alone
    assert lines["never"].split() == []  # and what it delivered never needed these


_SAID = re.compile(r"[a-z]+:")


def _probe(script: str, *args: str) -> dict[str, str]:
    """Run `script` in a fresh interpreter (no proxy variable); its ``name: values`` lines."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env_without_proxies(),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    said = [line.split(":", 1) for line in done.stdout.splitlines() if _SAID.match(line)]
    names = [name for name, _ in said]
    assert len(set(names)) == len(names), done.stdout[-2000:]  # each said once
    return dict(said)


def _env_without_proxies() -> dict[str, str]:
    """The test's environment with the source roots, and no proxy variable (a daemon that must
    look a proxy up loads urllib.request for it)."""
    env = {k: v for k, v in os.environ.items() if k[-6:].lower() != "_proxy"}
    return {**env, "PYTHONPATH": str(PACKAGE.parents[1] / "lambda")}


_ASYNC_LOGGING = """
import sys
import exportsync.logs
import structlog
from structlog.testing import capture_logs

assert "asyncio" not in sys.modules, "loaded with structlog"
import asyncio
with capture_logs() as logs:
    asyncio.run(structlog.get_logger("x").ainfo("async_line", n=1))
    asyncio.run(structlog.stdlib.get_logger("y").ainfo("stdlib_async_line"))
print("events:", *[entry["event"] for entry in logs])
print("same:", structlog.stdlib.asyncio.get_running_loop is asyncio.get_running_loop)
"""


def test_structlogs_async_methods_still_work_without_asyncio_loaded_at_import() -> None:
    """`exportsync.logs` imports structlog without asyncio; structlog's async methods then reach
    the real asyncio at their first call."""
    lines = _probe(_ASYNC_LOGGING)
    assert lines["events"].split() == ["async_line", "stdlib_async_line"]
    assert lines["same"].strip() == "True"
