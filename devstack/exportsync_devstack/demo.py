"""`make demo`: the whole pipeline on this machine, devstack and daemon, on `demo/export/`.

Starts the devstack (the real usage plan: 1 request/s, burst 1, 10 requests per day), writes
`demo/exportsync.toml` for it, seeds the export folder with two sample files when it is empty, and
runs `exportsync run` with console logs in the foreground. Ctrl-C stops the daemon (which drains)
and then the devstack. Each start is fresh: the devstack keeps its data in memory, so the demo's
spool is reset too, and files left in `demo/export/` are delivered again at start.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

__all__ = ["main"]

_SAMPLE_CSV = "date,steps,distance_km\n2026-11-24,8412,6.1\n2026-11-25,10230,7.4\n"
_SAMPLE_SESSION = {
    "timestamp": "2026-11-25T09:30:00Z",
    "duration_s": 1834,
    "avg_heart_rate": 131.5,
    "calories": 412.25,
}


def _write_config(base: Path, info: dict[str, str]) -> Path:
    key_file = base / "api_key"
    key_file.write_text(info["api_key"] + "\n")
    key_file.chmod(0o600)
    config = base / "exportsync.toml"
    config.write_text(
        "# Written by `make demo` for the devstack it started; see config/ for a full example.\n"
        "[watch]\n"
        f"dir = {json.dumps(str(base / 'export'))}\n"
        "[api]\n"
        f"url = {json.dumps(info['api_url'])}\n"
        f"api_key_file = {json.dumps(str(key_file))}\n"
        f"user_id = {json.dumps(info['user_id'])}\n"
        "[quota]\n"
        "requests_per_second = 1.0\nburst = 1\ndaily_requests = 10\n"
        "[state]\n"
        f"dir = {json.dumps(str(base / 'state'))}\n"
        "[log]\n"
        'format = "console"\n'
    )
    return config


def _seed(export: Path) -> None:
    if any(export.iterdir()):
        return
    (export / "activity.csv").write_text(_SAMPLE_CSV)
    (export / "morning-run.session.json").write_text(json.dumps(_SAMPLE_SESSION, indent=2))


def _banner(base: Path, config: Path, out: IO[str]) -> None:
    py = Path(sys.executable)

    def rel(path: Path) -> str:
        """Short paths when the demo lives below the current folder, absolute ones otherwise."""
        here = Path.cwd()
        return os.path.relpath(path) if path.is_relative_to(here) else str(path)

    lines = [
        "",
        "exportsync demo: the devstack (API Gateway + Lambda + S3 + DynamoDB on loopback) is up",
        "and the daemon below watches the folder. In another terminal:",
        "",
        f"  cp some-export.csv {rel(base / 'export')}/            # a CSV lands in S3",
        '  echo \'{"timestamp": "2026-11-25T12:00:00Z", "score": 0.1}\' \\',
        f"      > {rel(base / 'export')}/quiz.session.json       # a session lands in DynamoDB",
        f"  {rel(py.parent / 'exportsync')} status --config {rel(config)}",
        f"  {rel(py)} -m exportsync_devstack.show {rel(base / 'devstack.json')}",
        "",
        "The usage plan is the real one: 1 request/s and 10 a day, so files travel in batches.",
        "Ctrl-C stops everything.",
        "",
    ]
    out.write("\n".join(lines) + "\n")
    out.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m exportsync_devstack.demo")
    parser.add_argument(
        "--dir", type=Path, default=Path("demo"), help="demo folder (default: demo)"
    )
    args = parser.parse_args(argv)
    base: Path = args.dir.absolute()
    (base / "export").mkdir(parents=True, exist_ok=True)
    shutil.rmtree(base / "state", ignore_errors=True)

    devstack = subprocess.Popen(
        [sys.executable, "-m", "exportsync_devstack", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=(base / "devstack.log").open("w"),
        text=True,
    )
    assert devstack.stdout is not None
    line = devstack.stdout.readline()
    if not line:
        print(f"the devstack did not start; see {base / 'devstack.log'}", file=sys.stderr)
        return 1
    info: dict[str, str] = json.loads(line)
    (base / "devstack.json").write_text(
        json.dumps({k: v for k, v in info.items() if k != "api_key"}, indent=2) + "\n"
    )
    config = _write_config(base, info)
    _seed(base / "export")
    _banner(base, config, sys.stdout)

    daemon = subprocess.Popen(  # noqa: S603 -- this interpreter running exportsync itself
        [sys.executable, "-m", "exportsync", "run", "--config", str(config)],
        env={k: v for k, v in os.environ.items() if k != "EXPORTSYNC_API_KEY"},
    )
    # The terminal's Ctrl-C reaches all three processes; the daemon drains, then the devstack goes.
    signal.signal(signal.SIGINT, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: daemon.send_signal(signal.SIGTERM))
    code = daemon.wait()
    if devstack.poll() is None:
        devstack.send_signal(signal.SIGTERM)
    devstack.wait(30)
    print(f"\nexportsync demo stopped (daemon exit code {code}).")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
