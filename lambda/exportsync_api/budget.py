"""A per-request allowance shared by the entries of one request (inflated bytes, part URLs)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

__all__ = ["Budget"]


@dataclass
class Budget:
    """``remaining`` units left; :meth:`take` is all-or-nothing and thread-safe."""

    remaining: int
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def take(self, amount: int) -> bool:
        with self._lock:
            if amount > self.remaining:
                return False
            self.remaining -= amount
            return True
