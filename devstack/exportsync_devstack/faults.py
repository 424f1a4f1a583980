"""--fault-rate: a seeded share of accepted requests fails the way API Gateway + Lambda do.

Half of the kinds happen after the handler ran, the nasty real case: the write landed but the
client saw an error (or nothing), so a retry must come back as a duplicate, not a second copy.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from enum import StrEnum

__all__ = ["Fault", "FaultInjector"]


class Fault(StrEnum):
    BAD_GATEWAY = "bad_gateway"  # 502 Internal server error; the function crashed before work
    BAD_GATEWAY_AFTER = "bad_gateway_after"  # 502 after the handler ran (e.g. runtime died)
    UNAVAILABLE = "unavailable"  # 503 Service Unavailable, handler never reached
    TIMEOUT_AFTER = "timeout_after"  # 504 Endpoint request timed out; the handler did run
    DROP = "drop"  # connection closed without an answer, handler not run
    DROP_AFTER = "drop_after"  # connection closed without an answer after the handler ran
    SLOW = "slow"  # the real answer, late

    @property
    def handler_runs(self) -> bool:
        return self in (Fault.BAD_GATEWAY_AFTER, Fault.TIMEOUT_AFTER, Fault.DROP_AFTER, Fault.SLOW)


class FaultInjector:
    """Draws from one random.Random(seed), so the same request sequence sees the same faults."""

    def __init__(
        self, rate: float, seed: int | None, kinds: Sequence[Fault] = tuple(Fault)
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("fault rate must be within [0, 1]")
        if not kinds:
            raise ValueError("at least one fault kind is needed")
        self._rate = rate
        self._kinds = tuple(kinds)
        self._random = random.Random(seed)  # noqa: S311 -- reproducible test faults, not crypto
        self._lock = threading.Lock()

    def draw(self) -> Fault | None:
        """The fault for the next accepted request, or None to let it through untouched."""
        if self._rate == 0.0:
            return None
        with self._lock:
            if self._random.random() >= self._rate:
                return None
            return self._random.choice(self._kinds)
