"""Both sides of the API take their wire facts from ``exportsync_wire``, and nowhere else.

The first tests pin the identity (the daemon's and the Lambda's names are the package's objects);
the scans fail when a route path or a limit is written out again as a literal beside it, which is
how the two sides drifted apart before.
"""

from __future__ import annotations

import ast
import json
import operator
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import exportsync.batches
import exportsync.client
import exportsync_api.form
import exportsync_api.presign
import exportsync_wire
from exportsync.errors import (
    DeliveryError,
    Forbidden,
    QuotaExhausted,
    RequestTooLarge,
    Throttled,
    TransientError,
)
from exportsync_wire import DELIVERED, Status, gateway, limits, routes

ROOT = Path(__file__).resolve().parents[2]
# Every source root that speaks the wire format, except the package that defines it.
SOURCES = [ROOT / "daemon" / "exportsync", ROOT / "lambda" / "exportsync_api", ROOT / "devstack"]
WIRE = Path(exportsync_wire.__file__).parent

_ARITHMETIC: dict[type[ast.operator], Callable[[int, int], int]] = {
    ast.Mult: operator.mul,
    ast.Pow: operator.pow,
    ast.Add: operator.add,
}


def test_both_sides_build_the_same_presign_entry() -> None:
    assert exportsync.client.PresignFile is exportsync_wire.PresignFile
    body = json.dumps({"files": [{"filename": "a.csv", "sha256": "ab" * 32, "size": 1}]})
    parsed = exportsync_api.presign.parse_presign(body.encode()).files[0]
    assert type(parsed) is exportsync_wire.PresignFile
    assert parsed.to_json() == json.loads(body)["files"][0]


def test_the_daemons_parts_are_parts_s3_takes() -> None:
    """The daemon picks larger parts than S3's minimum (a choice of its own, not a wire limit)."""
    assert exportsync.batches.MIN_PART_BYTES >= limits.PART_MIN_BYTES


def test_the_function_takes_a_full_batch() -> None:
    """The function accepts 1,000 entries on every route, and its form parser holds a /batch."""
    assert limits.MAX_BATCH_ENTRIES == limits.MAX_ROUTE_ENTRIES == 1_000
    assert exportsync_api.form.MAX_PARTS > limits.MAX_BATCH_ENTRIES


def test_statuses_serialise_as_their_plain_names() -> None:
    assert json.dumps({"status": Status.RETRY}) == '{"status": "retry"}'
    assert {str(s) for s in Status} == {
        "stored",
        "duplicate",
        "rejected",
        "retry",
        "upload",
        "multipart",
    }
    assert "stored" in DELIVERED
    assert "retry" not in DELIVERED


def test_the_wire_package_imports_only_the_standard_library() -> None:
    """It ships in the Lambda zip and in the daemon: neither side's dependencies may leak in."""
    for path in WIRE.glob("*.py"):
        for module in _imported_modules(ast.parse(path.read_text(encoding="utf-8"))):
            assert module in sys.stdlib_module_names, f"{path.name} imports {module}"


def test_the_lambda_imports_nothing_of_the_daemon_or_devstack() -> None:
    """The zip is built from lambda/: it holds exportsync_api and exportsync_wire only."""
    for path in (ROOT / "lambda" / "exportsync_api").glob("*.py"):
        for module in _imported_modules(ast.parse(path.read_text(encoding="utf-8"))):
            assert module not in {"exportsync", "exportsync_devstack"}, path.name


def _sources() -> Iterator[Path]:
    for root in SOURCES:
        yield from root.rglob("*.py")


def _imported_modules(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.partition(".")[0]


def _constant_int(node: ast.expr) -> int | None:
    """The value of an integer literal or of literal arithmetic like ``5 * 1024**3``."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right = _constant_int(node.left), _constant_int(node.right)
        if left is not None and right is not None:
            return _ARITHMETIC[type(node.op)](left, right)
    return None


@pytest.mark.parametrize("path", list(_sources()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_wire_fact_is_written_out_again(path: Path) -> None:
    # Values distinctive enough that a literal equal to one is a copy (100 and 32 are not).
    sizes = {
        limits.PUT_BYTES,
        limits.ITEM_BYTES,
        limits.GATEWAY_BODY_BYTES,
        limits.LAMBDA_EVENT_BYTES,
        limits.INLINE_CEILING_BYTES,
        limits.INLINE_BODY_BYTES,
    }
    paths = {routes.UPLOAD, routes.SESSION, routes.PRESIGN, routes.BATCH}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert node.value not in paths, f"route path {node.value!r} at line {node.lineno}"
        if isinstance(node, ast.expr) and not isinstance(node, ast.Constant):
            value = _constant_int(node)
            assert value not in sizes, f"wire limit {value} at line {node.lineno}"
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            assert node.value not in sizes, f"wire limit {node.value} at line {node.lineno}"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (gateway.FORBIDDEN, Forbidden),
        (gateway.NO_ROUTE, Forbidden),
        (gateway.TOO_MANY_REQUESTS, Throttled),
        (gateway.LIMIT_EXCEEDED, QuotaExhausted),
        (gateway.REQUEST_TOO_LONG, RequestTooLarge),
        (gateway.INVOKE_FAILED, TransientError),
        (gateway.BAD_GATEWAY, TransientError),
        (gateway.UNAVAILABLE, TransientError),
        (gateway.TIMED_OUT, TransientError),
    ],
    ids=lambda v: getattr(v, "message", getattr(v, "__name__", "")),
)
def test_the_daemon_reads_each_gateway_answer_the_devstack_gives(
    answer: gateway.GatewayError, expected: type[DeliveryError]
) -> None:
    error = exportsync.client.classify(
        answer.status, json.dumps({"message": answer.message}).encode()
    )
    assert type(error) is expected
    assert str(error) == answer.message
