"""The API's route paths, all ``POST``, as both the daemon and the Lambda name them."""

from __future__ import annotations

from typing import Final

__all__ = ["BATCH", "PRESIGN", "ROUTES", "SESSION", "UPLOAD"]

UPLOAD: Final = "/upload"
SESSION: Final = "/session"
PRESIGN: Final = "/presign"
# Files, sessions and presign entries in one counted request (docs/api.md, "POST /batch").
BATCH: Final = "/batch"

# The routes the function serves.
ROUTES: Final = (UPLOAD, SESSION, PRESIGN, BATCH)
