"""Whether a test's code starts a process, read from code objects (tests/conftest.py's tiers).

A function spawns when it, or a function or class of ours it names (in its own module, or in a
module of ours it names), names the subprocess module or os.fork and the like.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

__all__ = ["spawns"]

_REPO = Path(__file__).resolve().parents[2]
_SOURCE_ROOTS = ("daemon", "lambda", "devstack", "tests")
_SPAWN_MODULES = frozenset({"subprocess", "multiprocessing", "pty"})
_OS_SPAWNS = frozenset({"fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "execv"})


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


def spawns(obj: object, seen: dict[int, bool]) -> bool:
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
                spawns(v, seen)
                for v in reached
                if isinstance(v, types.FunctionType | type) and _ours(v)
            )
        elif isinstance(value, types.FunctionType | type) and _ours(value):
            result = spawns(value, seen)
    seen[key] = result
    return result
