"""The tiers tests/conftest.py gives: one per test, a process seen through helpers, and a quick
test that starts a process anyway stopped; and property tests without a per-example deadline."""

from __future__ import annotations

import importlib
import subprocess
from pathlib import Path

import pytest
from hypothesis import settings

from support.daemon import run_daemon
from support.devstack import start_devstack, wait_for
from support.tiers import spawns

TIERS = ("quick", "integration", "soak")


def _runs_true() -> None:
    subprocess.run(["true"], check=True)


def _through_a_helper() -> None:
    _runs_true()


def _starts_a_devstack(tmp_path: Path) -> None:
    with start_devstack(tmp_path):
        pass


def _starts_a_daemon(config: Path) -> None:
    with run_daemon(config):
        pass


def _only_polls() -> None:
    wait_for(lambda: True, 0.1)


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        (_runs_true, True),
        (_through_a_helper, True),
        (_starts_a_devstack, True),
        (_starts_a_daemon, True),
        (_only_polls, False),
    ],
)
def test_a_process_is_seen_through_helpers_and_support(function: object, expected: bool) -> None:
    assert spawns(function, {}) is expected


def test_every_collected_test_has_exactly_one_tier(request: pytest.FixtureRequest) -> None:
    for item in request.session.items:
        tiers = [name for name in TIERS if item.get_closest_marker(name) is not None]
        assert len(tiers) == 1, (item.nodeid, tiers)


def test_the_folders_and_fixtures_decide(request: pytest.FixtureRequest) -> None:
    tiers = {item.nodeid: item for item in request.session.items}
    assert request.node.get_closest_marker("quick") is not None
    for nodeid, item in tiers.items():
        folder = nodeid.split("/")[1] if nodeid.startswith("tests/") else ""
        if folder in ("e2e", "devstack"):
            assert item.get_closest_marker("integration") is not None, nodeid
        if folder == "soak":
            assert item.get_closest_marker("soak") is not None, nodeid
        if "devstack" in getattr(item, "fixturenames", ()):
            assert item.get_closest_marker("quick") is None, nodeid


def test_a_quick_test_that_starts_a_process_anyway_is_stopped() -> None:
    hidden = importlib.import_module("sub" + "process")  # what the classifier cannot see
    with pytest.raises(AssertionError, match="classified quick but starts"):
        hidden.run(["true"], check=True)


def test_property_tests_have_no_per_example_deadline() -> None:
    """A busy machine is no bug: hypothesis's 200 ms default failed a quick test under load."""
    current = settings.default
    assert current is not None
    assert current.deadline is None
