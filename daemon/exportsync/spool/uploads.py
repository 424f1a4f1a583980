"""Multipart uploads in progress: each presigned plan and the ETags of the parts sent, so an
upload goes on after a restart without sending its parts again."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from exportsync.spool.connection import Connection

__all__ = ["UploadStore"]


class UploadStore(Connection):
    """The uploads and upload_parts tables."""

    def upload_save(self, item_id: int, plan: Mapping[str, Any]) -> dict[int, str]:
        """Remember a presigned multipart upload (its parts' URLs) before any part is sent; the
        ETags already recorded when it continues the upload recorded before, else none."""
        with self._tx() as db:
            row = db.execute("SELECT plan FROM uploads WHERE item_id = ?", (item_id,)).fetchone()
            same = row is not None and json.loads(row[0]).get("upload_id") == plan.get("upload_id")
            if same:
                db.execute(
                    "UPDATE uploads SET plan = ? WHERE item_id = ?", (json.dumps(plan), item_id)
                )
            else:
                db.execute("DELETE FROM uploads WHERE item_id = ?", (item_id,))
                db.execute(
                    "INSERT INTO uploads (item_id, plan) VALUES (?, ?)",
                    (item_id, json.dumps(plan)),
                )
            parts = db.execute(
                "SELECT number, etag FROM upload_parts WHERE item_id = ?", (item_id,)
            ).fetchall()
        return {int(n): str(e) for n, e in parts}

    def upload_get(self, item_id: int) -> tuple[dict[str, Any], dict[int, str]] | None:
        """(plan, ETags of parts sent) of the item's upload, or None."""
        rows = self._query("SELECT plan FROM uploads WHERE item_id = ?", (item_id,))
        if not rows:
            return None
        parts = self._query("SELECT number, etag FROM upload_parts WHERE item_id = ?", (item_id,))
        return json.loads(rows[0][0]), {int(n): str(e) for n, e in parts}

    def upload_part_done(self, item_id: int, number: int, etag: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO upload_parts (item_id, number, etag) VALUES (?, ?, ?)",
                (item_id, number, etag),
            )

    def upload_drop(self, item_id: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM uploads WHERE item_id = ?", (item_id,))

    def uploads_due(self, now: float) -> list[tuple[int, str, dict[str, Any], dict[int, str]]]:
        """(item id, its sha256, plan, ETags of parts sent) for uploads of due pending items."""
        rows = self._query(
            "SELECT u.item_id, i.sha256, u.plan FROM uploads u JOIN items i ON i.id = u.item_id"
            " WHERE i.state = 'pending' AND i.next_attempt_at <= ? ORDER BY u.item_id",
            (now,),
        )
        found = []
        for item_id, sha256, plan in rows:
            parts = self._query(
                "SELECT number, etag FROM upload_parts WHERE item_id = ?", (item_id,)
            )
            found.append(
                (int(item_id), str(sha256), json.loads(plan), {int(n): str(e) for n, e in parts})
            )
        return found
