"""after_upload on a real folder: a folder swapped for a symlink mid-move changes nothing outside
(the move works through O_NOFOLLOW directory descriptors, on the inode it checked)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from exportsync.fs import files
from exportsync.fs.aftercare import finish_file
from exportsync.spool import Item, Spool

DATA = b"id,value\n1,2\n"


def _item(tmp_path: Path, path: Path) -> Item:
    with Spool.open(tmp_path / "state") as spool:
        return spool.record(
            path,
            "csv",
            size=len(DATA),
            mtime_ns=1,
            sha256=hashlib.sha256(DATA).hexdigest(),
            now=1.0,
        ).item


def _swap_after_the_check(monkeypatch: pytest.MonkeyPatch, folder: Path, outside: Path) -> None:
    """The file is checked, then (before the move) `folder` becomes a symlink to `outside`."""
    real = files.snapshot
    swapped: list[Path] = []

    def snapshot(root: Path, path: Path, **kwargs: Any) -> files.FileSnapshot:
        taken = real(root, path, **kwargs)
        if not swapped:
            folder.rename(folder.with_name(folder.name + "-real"))
            folder.symlink_to(outside, target_is_directory=True)
            swapped.append(folder)
        return taken

    monkeypatch.setattr(files, "snapshot", snapshot)


@pytest.mark.parametrize("mode", ["move", "delete"])
@pytest.mark.parametrize("swapped", ["sub-folder", "root"])
def test_a_folder_swapped_for_a_symlink_mid_move_touches_nothing_outside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, swapped: str
) -> None:
    root = tmp_path / "export"
    sub = root / "sub"
    sub.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.csv").write_bytes(DATA)  # the same name and content: only the inode differs
    folder = sub if swapped == "sub-folder" else root
    path = folder / "a.csv"
    path.write_bytes(DATA)
    item = _item(tmp_path, path)
    _swap_after_the_check(monkeypatch, folder, outside)
    with capture_logs() as logs:
        finish_file(root, item, mode)  # type: ignore[arg-type]
    assert sorted(os.listdir(outside)) == ["a.csv"]
    assert (outside / "a.csv").read_bytes() == DATA
    assert (folder.with_name(folder.name + "-real") / "a.csv").read_bytes() == DATA
    assert [e["event"] for e in logs] == ["after_upload_failed"]


@pytest.mark.parametrize("mode", ["move", "delete"])
def test_a_delivered_file_in_a_sub_folder_is_moved_or_deleted(tmp_path: Path, mode: str) -> None:
    root = tmp_path / "export"
    (root / "sub").mkdir(parents=True)
    path = root / "sub" / "a.csv"
    path.write_bytes(DATA)
    finish_file(root, _item(tmp_path, path), mode)  # type: ignore[arg-type]
    assert not path.exists()
    assert (root / "sent" / "a.csv").exists() == (mode == "move")
    assert os.listdir(root / "sub") == []


def test_a_255_byte_name_is_deleted_too(tmp_path: Path) -> None:
    """Set aside before deletion under a private name, which must still fit in 255 bytes."""
    root = tmp_path / "export"
    root.mkdir()
    path = root / ("é" * 125 + ".csv")  # 254 bytes of UTF-8
    path.write_bytes(DATA)
    with capture_logs() as logs:
        finish_file(root, _item(tmp_path, path), "delete")
    assert os.listdir(root) == []
    assert [e["event"] for e in logs] == ["file_deleted"]
