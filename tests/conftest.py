"""Fixtures every suite may use, and the test tiers (README "Development").

Every test gets exactly one tier marker here, by where it lives and what it starts; none is set by
hand:
- `soak`: tests/soak/ -- the long proofs (`make soak`); `make test` runs their short seeded
  versions from tests/e2e.
- `integration`: tests/e2e/ and tests/devstack/, and any other test that starts a process -- it
  uses a fixture in SPAWNING_FIXTURES, or its code or code of ours it calls (helpers, fixtures,
  tests/support, the packages) names the subprocess module or os.fork and the like
  (tests/support/tiers.py).
- `quick`: everything else (`make quick`). A quick test that starts a subprocess anyway fails
  with a message: the classifier missed it, which is a bug to fix here.

`make test` spreads the modules over pytest-xdist workers (`--dist loadfile`): a module's tests run
on one worker, one after another, so a module's fixture (the booted systemd container, a moto
server) is built once and its tests never race each other; a session fixture (`open_devstack`) is
built once per worker. The integration tier is handed out first (see the sort below).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from support.devstack import DevstackInfo, start_devstack
from support.tiers import spawns

# Property tests judge what an example does, never how fast it ran: on a loaded two-core machine
# one example of test_keys_never_leave_the_user_prefix took 279 ms and failed hypothesis's
# default 200 ms deadline. Set before any test module builds its settings from the default.
settings.register_profile("exportsync", deadline=None)
settings.load_profile("exportsync")

_TESTS = Path(__file__).resolve().parent
SOAK_FOLDERS = frozenset({"soak"})
INTEGRATION_FOLDERS = frozenset({"e2e", "devstack"})
SPAWNING_FIXTURES = frozenset({"devstack", "open_devstack"})


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


def _starts_a_process(item: pytest.Function, seen: dict[int, bool]) -> bool:
    if SPAWNING_FIXTURES.intersection(item.fixturenames):
        return True
    function = getattr(item.function, "__wrapped__", item.function)
    if spawns(function, seen):
        return True
    for defs in item._fixtureinfo.name2fixturedefs.values():
        for fixture in defs:
            # This file's fixtures: the devstacks are named above; the guard below is not a spawn.
            func = getattr(fixture.func, "__wrapped__", fixture.func)
            here = (
                getattr(func, "__code__", None) is not None
                and func.__code__.co_filename == __file__
            )
            if not here and spawns(func, seen):
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


_RUN_ORDER = {"integration": 0, "quick": 1, "soak": 2}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    seen: dict[int, bool] = {}
    tiers: dict[str, str] = {}
    for item in items:
        tiers[item.nodeid] = tier = tier_of(item, seen)
        item.add_marker(tier)
    # The slow tier first (a stable sort): the workers start on the long tests, and the short
    # ones fill in around them instead of one long test running alone at the end.
    items.sort(key=lambda item: _RUN_ORDER[tiers[item.nodeid]])


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
            "teach tests/support/tiers.py or SPAWNING_FIXTURES how to see it"
        )

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
