"""Fixtures every suite may use, and the test tiers (README "Development").

Every test gets exactly one tier marker here, by where it lives and what it starts; none is set by
hand:
- `soak`: tests/soak/ -- the long proofs (`make soak`); `make test` runs their short seeded
  versions from tests/e2e.
- `integration`: tests/e2e/ and tests/devstack/, and any other test that starts a process -- it
  uses a fixture in SPAWNING_FIXTURES, or its code or code of ours it calls (helpers, fixtures,
  tests/support, the packages) names the subprocess module or os.fork and the like.
- `quick`: everything else (`make quick`). A quick test that starts a subprocess anyway fails
  with a message: the classifier missed it, which is a bug to fix here.
"""

from __future__ import annotations

import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.devstack import DevstackInfo, start_devstack

_TESTS = Path(__file__).resolve().parent
SOAK_FOLDERS = frozenset({"soak"})
INTEGRATION_FOLDERS = frozenset({"e2e", "devstack"})
SPAWNING_FIXTURES = frozenset({"devstack", "open_devstack"})
# A test starts a process when its code, or code of ours it reaches (helpers, fixtures,
# tests/support, the packages), names one of these.
_SPAWN_MODULES = frozenset({"subprocess", "multiprocessing", "pty"})
_OS_SPAWNS = frozenset({"fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "execv"})
_REPO = _TESTS.parent
_SOURCE_ROOTS = ("daemon", "lambda", "devstack", "tests")


@pytest.fixture
def devstack(tmp_path: Path) -> Iterator[DevstackInfo]:
    """A fresh devstack subprocess per test (its own quota), default usage plan (1/s, 10/day)."""
    with start_devstack(tmp_path / "devstack") as info:
        yield info


@pytest.fixture(scope="session")
def open_devstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevstackInfo]:
    """One devstack for the whole run, without rate or quota: for tests about the API and S3,
    not the plan. Shared, so read its counters as a difference and its objects by your own key."""
    with start_devstack(tmp_path_factory.mktemp("devstack"), "--rate", "0", "--quota", "0") as info:
        yield info


def _codes(obj: object) -> list[types.CodeType]:
    """The code of a function, or of every method of a class, with the code nested in it (a
    decorated function's own: @contextmanager wraps start_devstack and run_daemon)."""
    while hasattr(obj, "__wrapped__"):
        obj = obj.__wrapped__
    if isinstance(obj, type):
        found = [_codes(v) for v in vars(obj).values() if isinstance(v, types.FunctionType)]
        return [code for codes in found for code in codes]
    top = getattr(obj, "__code__", None)
    codes: list[types.CodeType] = []
    stack = [top] if isinstance(top, types.CodeType) else []
    while stack:
        code = stack.pop()
        codes.append(code)
        stack.extend(k for k in code.co_consts if isinstance(k, types.CodeType))
    return codes


def _ours(obj: object) -> bool:
    """Defined in this repository (not a library, not the standard library)."""
    codes = _codes(obj)
    return bool(codes) and any(
        codes[0].co_filename.startswith(str(_REPO / root)) for root in _SOURCE_ROOTS
    )


def _spawns(obj: object, seen: dict[int, bool]) -> bool:
    """Whether `obj` (a function or class of ours) or what it calls of ours names a way to start
    a process: the subprocess module, or os.fork/posix_spawn/system. Memoized in `seen`."""
    key = id(obj)
    if key in seen:
        return seen[key]
    seen[key] = False  # a cycle counts as not spawning; the other path decides
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    names = {name for code in _codes(obj) for name in code.co_names}
    result = False
    if "os" in names and names & _OS_SPAWNS:
        result = True
    for name in sorted(names):
        if result:
            break
        value = getattr(module, name, None) if module is not None else None
        if isinstance(value, types.ModuleType):
            # `import support.daemon as d; d.run_daemon()`: the module's functions it names.
            reached = (getattr(value, n, None) for n in names)
            result = value.__name__ in _SPAWN_MODULES or any(
                _spawns(v, seen)
                for v in reached
                if isinstance(v, types.FunctionType | type) and _ours(v)
            )
        elif isinstance(value, types.FunctionType | type) and _ours(value):
            result = _spawns(value, seen)
    seen[key] = result
    return result


def _starts_a_process(item: pytest.Function, seen: dict[int, bool]) -> bool:
    if SPAWNING_FIXTURES.intersection(item.fixturenames):
        return True
    function = getattr(item.function, "__wrapped__", item.function)
    if _spawns(function, seen):
        return True
    for defs in item._fixtureinfo.name2fixturedefs.values():
        for fixture in defs:
            # This file's fixtures: `devstack` is named above; the guard below is not a spawn.
            func = getattr(fixture.func, "__wrapped__", fixture.func)
            if func.__module__ != __name__ and _spawns(func, seen):
                return True
    return False


def tier_of(item: pytest.Item, seen: dict[int, bool]) -> str:
    """'soak', 'integration' or 'quick' for a collected test."""
    try:
        folder = Path(str(item.path)).resolve().relative_to(_TESTS).parts[0]
    except ValueError:
        folder = ""
    if folder in SOAK_FOLDERS:
        return "soak"
    if folder in INTEGRATION_FOLDERS or item.get_closest_marker("integration") is not None:
        return "integration"
    if isinstance(item, pytest.Function) and _starts_a_process(item, seen):
        return "integration"
    return "quick"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    seen: dict[int, bool] = {}
    for item in items:
        item.add_marker(tier_of(item, seen))


class _QuickStartedAProcess(AssertionError):
    pass


@pytest.fixture(autouse=True)
def _quick_starts_no_process(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `quick` test may not start a process: `make quick`'s promise, checked, not hoped."""
    if request.node.get_closest_marker("quick") is None:
        return

    def refuse(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        raise _QuickStartedAProcess(
            f"{request.node.nodeid} is classified quick but starts {args!r}: "
            "teach tests/conftest.py (_spawns, SPAWNING_FIXTURES) how to see it"
        )

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
