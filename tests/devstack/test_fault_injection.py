"""--fault-rate/--seed: which accepted requests fail, reproducibly."""

from __future__ import annotations

import pytest

from exportsync_devstack.faults import Fault, FaultInjector


def _draws(rate: float, seed: int | None, n: int = 200) -> list[Fault | None]:
    injector = FaultInjector(rate, seed)
    return [injector.draw() for _ in range(n)]


def test_same_seed_same_faults_different_seed_different_faults() -> None:
    assert _draws(0.5, 7) == _draws(0.5, 7)
    assert _draws(0.5, 7) != _draws(0.5, 8)


def test_rate_sets_the_share_of_failed_requests() -> None:
    draws = _draws(0.3, 42, n=2000)
    share = sum(d is not None for d in draws) / len(draws)
    assert 0.25 < share < 0.35
    assert set(draws) - {None} == set(Fault)  # every kind shows up


def test_rate_zero_never_and_rate_one_always() -> None:
    assert _draws(0.0, 1) == [None] * 200
    assert None not in _draws(1.0, 1)


def test_faults_happen_both_before_and_after_the_handler() -> None:
    assert {f.handler_runs for f in Fault} == {True, False}
    assert Fault.TIMEOUT_AFTER.handler_runs
    assert not Fault.UNAVAILABLE.handler_runs


def test_kinds_can_be_narrowed() -> None:
    injector = FaultInjector(1.0, 3, kinds=[Fault.DROP])
    assert {injector.draw() for _ in range(20)} == {Fault.DROP}


def test_invalid_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="fault rate"):
        FaultInjector(1.5, None)
