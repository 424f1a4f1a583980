"""The daemon's import graph, read from the source: cli -> daemon -> intake/delivery ->
spool/client, with no upward arrow, and the light modules kept light."""

from __future__ import annotations

import ast
import functools
import os
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
        # `run` carries no other command's imports.
        ("exportsync.cli.run", {"shtab", "exportsync.firstrun", "exportsync.service"}),
        ("exportsync.cli", {"exportsync.daemon", "shtab"}),
    ],
)
def test_a_module_does_not_reach(module: str, never: set[str]) -> None:
    assert _reaches(module) & never == set()


# Loaded at first use only: an idle daemon with metrics off never needs them (README
# "Performance", idle RSS).
_LAZY = ("requests", "urllib3", "prometheus_client", "tenacity", "gzip", "wsgiref")

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
    requests, prometheus_client, tenacity and gzip stay unloaded until something needs them."""
    (tmp_path / "export").mkdir()
    script = _IDLE_DAEMON % (_LAZY,)
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "export"), str(tmp_path / "state")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(PACKAGE.parents[1] / "lambda")},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    [line] = [line for line in done.stdout.splitlines() if line.startswith("loaded:")]
    assert line.split()[1:] == []
