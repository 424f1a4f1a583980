"""What happens to a delivered file in the folder: `after_upload` = keep | move | delete.

The item is delivered whatever happens here, so nothing raises: a failure is logged and the file
stays. A file is moved (into `sent/`, or aside to a private name before deletion) only if it
still holds the delivered content, and checked once more after the move: a write that slipped in
between goes back into the folder, where it is spooled as a new version.
"""

from __future__ import annotations

from pathlib import Path

from exportsync.config import AfterUpload
from exportsync.errors import FileRejected
from exportsync.fs import files, moves
from exportsync.logs import get_logger
from exportsync.spool import Item

__all__ = ["finish_file"]

log = get_logger(__name__)


def finish_file(root: Path, item: Item, mode: AfterUpload) -> None:
    """Keep, move or delete the delivered file `item.path`; never raises."""
    if mode == "keep":
        return
    try:
        current = files.snapshot(root, item.path)
    except FileNotFoundError:
        return
    except (files.FileChanged, FileRejected, OSError) as exc:
        log.warning("after_upload_failed", item_id=item.id, path=str(item.path), error=str(exc))
        return
    if current.sha256 != item.sha256:
        return  # rewritten since: the new version is (or will be) spooled; leave it be
    try:
        if mode == "move":
            target = moves.move_to_sent(root, item.path, inode=current.inode)
        else:
            target = moves.set_aside(root, item.path, inode=current.inode)
        if not _still_delivered(root, item, target):
            return
        if mode == "move":
            log.info("file_moved", item_id=item.id, path=str(item.path), to=str(target))
        else:
            moves.delete_file(root, target, inode=current.inode)
            log.info("file_deleted", item_id=item.id, path=str(item.path))
    except (FileRejected, OSError) as exc:
        log.warning("after_upload_failed", item_id=item.id, path=str(item.path), error=str(exc))


def _still_delivered(root: Path, item: Item, moved: Path) -> bool:
    try:
        same = files.snapshot(root, moved).sha256 == item.sha256
    except (files.FileChanged, FileRejected):
        same = False
    if same:
        return True
    back = moves.restore(root, moved, item.path)
    log.warning(
        "file_changed_after_delivery", item_id=item.id, path=str(item.path), restored=str(back)
    )
    return False
