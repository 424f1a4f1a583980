"""exportsync's wire contract: route paths, limits, statuses, error codes, JSON shapes, the
gateway's own error answers and what makes a session storable.

Imported by the daemon and by the Lambda, so both sides obey one definition (docs/api.md describes
the API in prose). It imports nothing but the standard library, and it lives beside the function's
package because the function's zip is built from this folder; the daemon installs it as its own
top-level package.
"""

from __future__ import annotations

from . import gateway, limits, parts, routes, sessions, shapes
from .batch import GZIP, Kind
from .codes import ErrorCode
from .shapes import *  # noqa: F403 -- the JSON shapes are the wire's too; shapes.__all__ names them
from .status import DELIVERED, Status

__all__ = [
    "DELIVERED",
    "GZIP",
    "ErrorCode",
    "Kind",
    "Status",
    "gateway",
    "limits",
    "parts",
    "routes",
    "sessions",
]
__all__ += shapes.__all__
