"""errors.py documents the exception tree; the tree is the code's."""

from __future__ import annotations

import importlib
import pkgutil
import re

import exportsync
from exportsync import errors
from exportsync.errors import ExportsyncError


def _every_subclass(cls: type[BaseException]) -> set[type[BaseException]]:
    found: set[type[BaseException]] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_every_subclass(sub)}
    return found


def _documented() -> dict[str, str]:
    """Each class named in the module docstring's tree, with the parent it is drawn under."""
    assert errors.__doc__ is not None
    parents: dict[int, str] = {}
    drawn: dict[str, str] = {}
    for line in errors.__doc__.splitlines():
        match = re.match(r"^([│ ]*)(?:[├└]── )?([A-Z]\w+)(?:\s|$)", line)
        if match is None or not ("──" in line or line.strip() == match.group(2)):
            continue
        depth = len(match.group(1)) // 4 + (1 if "──" in line else 0)
        name = match.group(2)
        parents[depth] = name
        if depth > 0:
            drawn[name] = parents[depth - 1]
    return drawn


def test_the_documented_tree_is_every_exportsync_error_under_its_parent() -> None:
    for module in pkgutil.walk_packages(exportsync.__path__, "exportsync."):
        if module.name != "exportsync.__main__":
            importlib.import_module(module.name)
    actual = {cls.__name__: cls.__bases__[0].__name__ for cls in _every_subclass(ExportsyncError)}
    assert _documented() == actual
