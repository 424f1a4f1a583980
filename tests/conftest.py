"""Fixtures every suite may use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.devstack import DevstackInfo, start_devstack


@pytest.fixture
def devstack(tmp_path: Path) -> Iterator[DevstackInfo]:
    """A fresh devstack subprocess per test (its own quota), default usage plan (1/s, 10/day)."""
    with start_devstack(tmp_path / "devstack") as info:
        yield info
