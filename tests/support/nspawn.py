"""A real systemd as PID 1: a `systemd-nspawn --volatile=yes` container booted from this machine's
own /usr, driven with `nsenter` (tests/e2e/test_systemd.py).

The container's root is a tmpfs with the host's /usr under it; `binds` bring in what the test
needs (the daemon's venv, the watch folder, /etc/exportsync). It shares the host's network, so the
devstack on 127.0.0.1 is reachable from inside. `unavailable()` says why it cannot run here.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Container", "boot", "build_venv", "unavailable"]

_REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")
# Outside any home (ProtectHome= hides those) and outside /tmp and /var/tmp (PrivateTmp= hides
# those): the system unit must see it. Kept between runs, per version of the sources.
VENV_ROOT = Path("/opt/exportsync-systemd-test")
BOOT_DEADLINE = 60.0
# What a user manager needs from /etc that a volatile root does not have: its PAM stack.
_HOST_ETC = ("/etc/pam.d", "/etc/security", "/etc/login.defs")
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def unavailable() -> str | None:
    """Why a container cannot be booted here, or None."""
    if not sys.platform.startswith("linux"):
        return "systemd-nspawn needs Linux"
    if os.geteuid() != 0:
        return "booting a systemd-nspawn container needs root"
    for tool in ("systemd-nspawn", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian packages systemd-container, util-linux)"
    if not SYSTEM_PYTHON.exists():
        return f"{SYSTEM_PYTHON} is missing: the container runs the daemon on the host's /usr"
    return None


def _sources_digest() -> str:
    digest = hashlib.sha256()
    for root in ("daemon", "lambda/exportsync_wire"):
        for path in sorted((_REPO / root).rglob("*.py")):
            digest.update(str(path.relative_to(_REPO)).encode() + b"\0" + path.read_bytes())
    digest.update((_REPO / "pyproject.toml").read_bytes())
    return digest.hexdigest()[:16]


def build_venv() -> Path:
    """`pip install .` into a venv of /usr/bin/python3 (the container has only the host's /usr),
    reused while the sources are unchanged."""
    venv = VENV_ROOT / f"venv-{_sources_digest()}"
    done = venv / ".complete"
    if done.exists():
        return venv
    VENV_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    if VENV_ROOT.lstat().st_uid != 0 or VENV_ROOT.is_symlink():
        raise RuntimeError(f"{VENV_ROOT} is not root's own folder; remove it")
    for old in VENV_ROOT.glob("venv-*"):  # older sources' venvs, or a build cut short
        shutil.rmtree(old, ignore_errors=True)
    # Built where it stays: its scripts name the venv's python by path.
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", str(_REPO)],
        check=True,
        timeout=600,
        capture_output=True,
    )
    done.touch()
    return venv


@dataclass
class Container:
    """A booted container: `run` executes a command inside it (as root, or as `user`)."""

    leader: int  # the container's PID 1, as the host sees it
    log: Path

    def run(
        self,
        args: Sequence[str],
        *,
        user: str | None = None,
        env: dict[str, str] | None = None,
        check: bool = True,
        timeout: float = 60.0,
        input_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        base = {"PATH": _PATH, "LANG": "C.UTF-8", "HOME": "/root", **(env or {})}
        command = ["env", "-i", *(f"{k}={v}" for k, v in base.items()), *args]
        if user is not None:
            command = ["runuser", "-u", user, "--", *command]
        done = subprocess.run(
            ["nsenter", "-t", str(self.leader), "-m", "-u", "-i", "-n", "-p", *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input_text,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
            )
        return done

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(["systemctl", "--no-pager", *args], check=check)

    def show(self, unit: str, prop: str) -> str:
        return self.systemctl("show", "-P", prop, unit).stdout.strip()

    def journal(self, *args: str) -> list[dict[str, Any]]:
        """journalctl's entries as JSON objects (`-o json`)."""
        out = self.run(["journalctl", "--no-pager", "-o", "json", *args]).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]


def _leader(nspawn: subprocess.Popen[bytes]) -> int | None:
    try:
        children = Path(f"/proc/{nspawn.pid}/task/{nspawn.pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


@contextmanager
def boot(name: str, binds: dict[Path, Path], log: Path) -> Iterator[Container]:
    """Boot the container with `binds` (host path -> path inside); yields once systemd inside is
    up (running or degraded). Raises RuntimeError with the console's tail if it never is."""
    command = [
        "systemd-nspawn",
        "--directory=/",
        "--volatile=yes",
        "--register=no",
        "--keep-unit",
        f"--machine={name}",
        *(f"--bind-ro={path}" for path in _HOST_ETC if Path(path).exists()),
        *(f"--bind={host}:{inside}" for host, inside in binds.items()),
        "--boot",
        "systemd.firstboot=off",
    ]
    with log.open("wb") as out:
        nspawn = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        container = _wait_booted(nspawn, log)
        yield container
    finally:
        _power_off(nspawn)


def _wait_booted(nspawn: subprocess.Popen[bytes], log: Path) -> Container:
    deadline = time.monotonic() + BOOT_DEADLINE
    while time.monotonic() < deadline:
        if nspawn.poll() is not None:
            break
        leader = _leader(nspawn)
        if leader is not None:
            container = Container(leader, log)
            state = container.systemctl("is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                return container
        time.sleep(0.2)  # polling the boot; bounded by BOOT_DEADLINE
    tail = log.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"the container did not boot (nspawn exit {nspawn.poll()}):\n{tail}")


def _power_off(nspawn: subprocess.Popen[bytes]) -> None:
    if nspawn.poll() is None:
        nspawn.send_signal(signal.SIGTERM)  # nspawn asks the container's systemd to power off
        try:
            nspawn.wait(30)
        except subprocess.TimeoutExpired:
            nspawn.kill()
            nspawn.wait(10)
