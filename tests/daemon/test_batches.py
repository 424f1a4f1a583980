"""What fits in one request: the session slicing rules."""

from __future__ import annotations

from exportsync.batches import slice_sessions
from exportsync.sessions import ParsedSession


def _ok(i: int, size: int) -> ParsedSession:
    return ParsedSession(i, b"x" * size, None, "u", "t")


def _bad(i: int) -> ParsedSession:
    return ParsedSession(i, None, "NaN is not a valid JSON number", "u", "t")


def test_slices_stop_at_the_session_count_and_the_byte_budget() -> None:
    parsed = [_ok(i, 10) for i in range(10)]
    assert len(slice_sessions(parsed, 0, 3, 10_000, first=True)) == 3
    assert len(slice_sessions(parsed, 0, 100, 33, first=True)) == 3  # 3 x (10 + 1 comma)
    assert [p.index for p in slice_sessions(parsed, 8, 100, 10_000, first=False)] == [8, 9]


def test_invalid_entries_ride_along_for_free() -> None:
    parsed = [_ok(0, 10), _bad(1), _bad(2), _ok(3, 10)]
    assert [p.index for p in slice_sessions(parsed, 0, 1, 10_000, first=True)] == [0, 1, 2]


def test_the_first_entry_of_an_empty_batch_always_fits() -> None:
    parsed = [_ok(0, 500_000)]
    assert len(slice_sessions(parsed, 0, 1, 100, first=True)) == 1
    assert slice_sessions(parsed, 0, 1, 100, first=False) == []
