"""Real programs write into the watch folder the way they do; only each final file arrives.

One `exportsync run` against the devstack (no daily limit, so pacing never holds a file back)
watches the folder while cp, mv from another file system, dd fed by a slow pipe, tar, unzip, curl,
rsync (default and --inplace), an office suite's save, vim with backups and node write streams put
files there. Each writer leaves its own debris (temp names, lock files, backups, a file created
long before its first byte, mtimes set after the close); every test checks that the objects that
reached S3 are exactly the final bytes of its files, each spooled once, and nothing else: a
checkpoint file written after the writer finished must arrive too, so whatever the writer left
behind has had its chance to be (wrongly) sent.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from exportsync.spool import Item
from support.daemon import DaemonProcess, run_daemon, spool_items, write_config
from support.devstack import DevstackInfo, s3_objects, start_devstack, wait_for

DELIVERY_DEADLINE = 60.0
# A writer that pauses before its first byte pauses longer than the folder's settle time, so a
# file that merely appeared (created, still empty, held open) would be taken if the daemon did not
# know a writer still holds it. Every writer's pauses add up to well under 2 s.
SETTLE_SECONDS = 0.5
FIRST_PAUSE = 0.7
CHUNK_PAUSE = 0.08
CHUNKS = 8


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _csv(tag: str, rows: int = 4000) -> bytes:
    """A CSV of a few hundred KB, its content unique to `tag` (seeded: the same every run)."""
    rng = random.Random(tag)  # noqa: S311 -- test data, not secrets
    lines = [f"id,tag,value,{tag}"]
    lines += [f"{i},{tag},{rng.random():.12f},{rng.getrandbits(64):x}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def _chunks(data: bytes, count: int = CHUNKS) -> list[bytes]:
    size = -(-len(data) // count)
    return [data[i : i + size] for i in range(0, len(data), size)]


def _need(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (.ci/system-packages installs it)")


def _run(*command: str | Path, cwd: Path | None = None) -> None:
    subprocess.run(
        [str(c) for c in command], check=True, timeout=60, cwd=cwd, stdin=subprocess.DEVNULL
    )


@dataclass
class Folder:
    """The watched folder, the daemon on it, and what each test expects to have arrived."""

    info: DevstackInfo
    daemon: DaemonProcess
    export: Path
    scratch: Path  # same file system as the folder, outside it
    checkpoints: int = field(default=0)

    def _objects(self) -> set[tuple[str, str]]:
        """(sha256, filename) of every object in the bucket, all under the user's prefix."""
        prefix = f"uploads/{self.info.user_id}/"
        pairs = set()
        for key, body in s3_objects(self.info).items():
            assert key.startswith(prefix), key
            sha, name = key[len(prefix) :].split("/", 1)
            assert _sha(body) == sha, key  # the object holds the bytes its key names
            pairs.add((sha, name))
        return pairs

    def _items(self) -> dict[int, Item]:
        return {item.id: item for item in spool_items(self.daemon.state_dir)}

    def before(self) -> tuple[set[tuple[str, str]], set[int]]:
        return self._objects(), set(self._items())

    def _delivered(self, expected: set[tuple[str, str]]) -> bool:
        done = {
            (item.sha256, item.path.name)
            for item in self._items().values()
            if item.state == "delivered" and item.sha256 is not None
        }
        return expected <= done

    def wait_delivered(self, versions: dict[str, list[bytes]]) -> None:
        expected = {(_sha(data), name) for name, datas in versions.items() for data in datas}
        assert wait_for(lambda: self._delivered(expected), DELIVERY_DEADLINE, 0.05), (
            f"not delivered: {sorted(n for _, n in expected)}\n{self.daemon.output()}"
        )

    def assert_exactly(
        self, before: tuple[set[tuple[str, str]], set[int]], versions: dict[str, list[bytes]]
    ) -> None:
        """Since `before`: exactly these versions of these names were spooled and reached S3."""
        self.checkpoints += 1
        checkpoint = f"zz-checkpoint-{self.checkpoints}.csv"
        (self.export / checkpoint).write_bytes(f"checkpoint,{self.checkpoints}\n".encode())
        versions = {**versions, checkpoint: [(self.export / checkpoint).read_bytes()]}
        self.wait_delivered(versions)
        assert self.daemon.process.poll() is None, self.daemon.output()

        objects_before, ids_before = before
        expected = {(_sha(data), name) for name, datas in versions.items() for data in datas}
        assert self._objects() - objects_before == expected
        new_items = [item for i, item in self._items().items() if i not in ids_before]
        spooled = sorted((item.path.name, item.sha256, item.state) for item in new_items)
        assert spooled == sorted((name, sha, "delivered") for sha, name in expected)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Folder]:
    base = tmp_path_factory.mktemp("real-writers")
    with start_devstack(base / "ds", "--quota", "0", "--rate", "20", "--burst", "5") as info:
        config = write_config(
            base,
            info,
            watch={"settle_seconds": SETTLE_SECONDS},
            quota={"daily_requests": 0, "requests_per_second": 10.0, "burst": 5},
        )
        scratch = base / "scratch"
        scratch.mkdir()
        with run_daemon(config) as daemon:
            daemon.wait_ready()
            yield Folder(info, daemon, base / "export", scratch)
            assert daemon.process.poll() is None, daemon.output()
            assert daemon.terminate() == 0, daemon.output()


def _source(folder: Folder, name: str, data: bytes) -> Path:
    path = folder.scratch / name
    path.write_bytes(data)
    return path


def test_cp(folder: Folder) -> None:
    before = folder.before()
    data = _csv("cp")
    _run("cp", _source(folder, "cp.csv", data), folder.export / "cp-report.csv")
    folder.assert_exactly(before, {"cp-report.csv": [data]})


def test_mv_from_another_file_system(folder: Folder) -> None:
    """mv across devices copies into the final name, sets times and modes after, then unlinks."""
    shm = Path("/dev/shm")  # noqa: S108 -- a second file system, not a temp file's name
    data = _csv("mv")
    target = folder.export / "mv-report.csv"
    before = folder.before()
    if shm.is_dir() and os.stat(shm).st_dev != os.stat(folder.export).st_dev:
        with tempfile.TemporaryDirectory(dir=shm) as elsewhere:
            source = Path(elsewhere) / "mv-report.csv"
            source.write_bytes(data)
            os.utime(source, (1_600_000_000, 1_600_000_000))
            _run("mv", source, target)
            assert not source.exists()
    else:  # no second file system here: do what mv does across one
        with target.open("wb") as out:
            for chunk in _chunks(data):
                out.write(chunk)
        os.utime(target, (1_600_000_000, 1_600_000_000))
    folder.assert_exactly(before, {"mv-report.csv": [data]})


def test_dd_from_a_slow_pipe(folder: Folder) -> None:
    """dd opens its output at once and writes as the pipe trickles in (short reads included)."""
    _need("dd")
    data = _csv("dd")
    before = folder.before()
    dd = subprocess.Popen(
        ["dd", f"of={folder.export / 'dd-report.csv'}", "bs=65536", "status=none"],
        stdin=subprocess.PIPE,
    )
    assert dd.stdin is not None
    time.sleep(FIRST_PAUSE)  # the writer's pace, not a wait for the daemon
    for chunk in _chunks(data):
        dd.stdin.write(chunk)
        dd.stdin.flush()
        time.sleep(CHUNK_PAUSE)
    dd.stdin.close()
    assert dd.wait(30) == 0
    folder.assert_exactly(before, {"dd-report.csv": [data]})


def test_tar_extract(folder: Folder) -> None:
    """tar writes each member, closes it, then sets its (old) mtime: each arrives once."""
    _need("tar")
    members = {f"tar-{n}.csv": _csv(f"tar-{n}") for n in range(3)}
    archive = folder.scratch / "export.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in members.items():
            path = _source(folder, name, data)
            os.utime(path, (1_500_000_000, 1_500_000_000))
            tar.add(path, arcname=name)
    before = folder.before()
    _run("tar", "-xf", archive, "-C", folder.export)
    assert (folder.export / "tar-0.csv").stat().st_mtime == 1_500_000_000
    folder.assert_exactly(before, {name: [data] for name, data in members.items()})


def test_unzip(folder: Folder) -> None:
    _need("unzip")
    members = {f"zip-{n}.csv": _csv(f"zip-{n}") for n in range(3)}
    archive = folder.scratch / "export.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 2, 3, 4, 6)), data)
    before = folder.before()
    _run("unzip", "-q", archive, "-d", folder.export)
    folder.assert_exactly(before, {name: [data] for name, data in members.items()})


class _SlowCsv(BaseHTTPRequestHandler):
    """Serves one CSV: headers, a pause, then the body in chunks with pauses between."""

    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.flush()
        time.sleep(FIRST_PAUSE)
        for chunk in _chunks(self.body):
            self.wfile.write(chunk)
            self.wfile.flush()
            time.sleep(CHUNK_PAUSE)

    def log_message(self, format: str, *args: object) -> None:
        return


def test_curl_download(folder: Folder) -> None:
    _need("curl")
    data = _csv("curl")
    handler = type("Handler", (_SlowCsv,), {"body": data})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        before = folder.before()
        url = f"http://127.0.0.1:{server.server_address[1]}/report.csv"
        target = folder.export / "curl-report.csv"
        _run("curl", "--silent", "--show-error", "--fail", "--noproxy", "*", "-o", target, url)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    folder.assert_exactly(before, {"curl-report.csv": [data]})


def test_rsync_default(folder: Folder) -> None:
    """rsync writes `.name.XXXXXX` beside the target, sets its times, then renames it."""
    _need("rsync")
    tree = folder.scratch / "rsync-tree"
    tree.mkdir()
    members = {f"rsync-{n}.csv": _csv(f"rsync-{n}") for n in range(3)}
    for name, data in members.items():
        (tree / name).write_bytes(data)
    before = folder.before()
    _run("rsync", "-a", f"{tree}/", f"{folder.export}/")
    folder.assert_exactly(before, {name: [data] for name, data in members.items()})


def test_rsync_inplace(folder: Folder) -> None:
    """--inplace writes into the target itself: a new file, then an update sent as a delta
    (only the changed blocks rewritten in the delivered file)."""
    _need("rsync")
    first = _csv("rsync-inplace")
    target = folder.export / "rsync-inplace.csv"
    source = _source(folder, "rsync-inplace.csv", first)
    before = folder.before()
    _run("rsync", "--inplace", source, target)
    folder.wait_delivered({"rsync-inplace.csv": [first]})

    middle = len(first) // 2
    second = first[:middle] + b"edited,row\n" + first[middle:] + _csv("rsync-inplace-more")
    source.write_bytes(second)
    _run("rsync", "--inplace", "--no-whole-file", "--block-size=4096", source, target)
    folder.assert_exactly(before, {"rsync-inplace.csv": [first, second]})


def test_office_suite_save(folder: Folder) -> None:
    """Open, save, close as LibreOffice does (`.~lock.NAME#`, a `lu*.tmp` renamed over the file)
    and as Excel does (`~$NAME` owner lock, a temp without extension, the old file renamed to
    `~WRL*.tmp` and deleted): every save arrives, no lock or temp file does."""
    first, second, third = _csv("office-1"), _csv("office-2"), _csv("office-3")
    target = folder.export / "report.csv"
    before = folder.before()
    target.write_bytes(first)
    folder.wait_delivered({"report.csv": [first]})

    # LibreOffice: lock file while open; save writes a temp, fsyncs, renames over the target.
    lock = folder.export / ".~lock.report.csv#"
    lock.write_bytes(b",alice,host,29.11.2026 10:00,file:///home/alice/.config/libreoffice/4;")
    temp = folder.export / "lu12345abcd.tmp"
    with temp.open("wb") as out:
        for chunk in _chunks(second):
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    temp.replace(target)
    folder.wait_delivered({"report.csv": [second]})
    lock.unlink()

    # Excel: owner lock; new content under a temp name, the old file moved aside, the temp
    # renamed to the real name, the old one deleted.
    owner = folder.export / "~$report.csv"
    owner.write_bytes(b"\x05alice" + b" " * 48)
    temp = folder.export / "8A3F21C0"
    temp.write_bytes(third)
    aside = folder.export / "~WRL0001.tmp"
    target.replace(aside)
    temp.replace(target)
    aside.unlink()
    owner.unlink()
    folder.assert_exactly(before, {"report.csv": [first, second, third]})


@pytest.mark.parametrize("backupcopy", ["auto", "yes"])
def test_vim_with_backups(folder: Folder, backupcopy: str) -> None:
    """vim with backup and writebackup: `auto` renames the file to `NAME~` and writes a new one,
    `yes` copies it to `NAME~` and rewrites it in place; a swap file `.NAME.swp` and a probe file
    `4913` come and go meanwhile."""
    _need("vim")
    name = f"vim-{backupcopy}.csv"
    first = _csv(name)
    target = folder.export / name
    before = folder.before()
    target.write_bytes(first)
    folder.wait_delivered({name: [first]})

    _run(
        "vim",
        *("-u", "NONE", "-i", "NONE", "-N", "-Es"),
        # backupskip's default skips /tmp/*, where the test's folder lives
        *("-c", f"set backup writebackup backupskip= backupcopy={backupcopy}"),
        *("-c", 'call append(line("$"), "added,by,vim")'),
        *("-c", "wq"),
        target,
        cwd=folder.export,
    )
    second = first + b"added,by,vim\n"
    assert target.read_bytes() == second
    assert (folder.export / f"{name}~").read_bytes() == first  # the backup was really made
    folder.assert_exactly(before, {name: [first, second]})


_NODE_WRITER = """
const fs = require("fs");
const [source, target, first, pause, count] = process.argv.slice(1);
const data = fs.readFileSync(source);
const size = Math.ceil(data.length / Number(count));
const out = fs.createWriteStream(target);
let offset = 0;
function next() {
    if (offset >= data.length) { out.end(); return; }
    out.write(data.subarray(offset, offset + size));
    offset += size;
    setTimeout(next, Number(pause));
}
out.on("open", () => setTimeout(next, Number(first)));
out.on("error", (err) => { console.error(err); process.exit(1); });
"""


def test_node_write_stream(folder: Folder) -> None:
    _need("node")
    data = _csv("node")
    source = _source(folder, "node.csv", data)
    before = folder.before()
    _run(
        "node",
        "-e",
        _NODE_WRITER,
        source,
        folder.export / "node-report.csv",
        str(int(FIRST_PAUSE * 1000)),
        str(int(CHUNK_PAUSE * 1000)),
        str(CHUNKS),
    )
    folder.assert_exactly(before, {"node-report.csv": [data]})
