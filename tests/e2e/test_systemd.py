"""exportsync under a real systemd: PID 1 of a `systemd-nspawn --volatile=yes` container booted from
this machine's own /usr, with the daemon's venv (`pip install .` on /usr/bin/python3), the watch
folder and /etc/exportsync bound in, and the devstack on the shared loopback.

The system unit, as `exportsync service install --system --run-as exportsync` writes it: active only
after READY=1, runs as its account, the watchdog leaves a healthy daemon alone and restarts a
stopped one, kill -9 loses nothing, `systemctl reload` reloads, the journal's priorities work, and
`systemctl stop` is quick and clean. The user unit, as `service install --user` writes it, under
a real user manager (user@UID.service): `exportsync status` in that user's shell sees what the
service delivered (systemd 252 would have put a StateDirectory= under ~/.config).

One container for the module; it skips, saying why, where nspawn cannot boot one.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from support.devstack import DevstackInfo, s3_objects, start_devstack, usage, wait_for
from support.nspawn import Container, boot, build_venv, unavailable

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

UNIT = "exportsync.service"
ACCOUNT = "exportsync"
EXPORTS = Path("/srv/exports")  # inside the container
CONFIG = Path("/etc/exportsync/config.toml")
INSTALL = ["service", "install", "--system", "--run-as", ACCOUNT, "--config", str(CONFIG)]
DEADLINE = 60.0  # a bound against hanging; each check waits for a state, never a time


@dataclass
class Machine:
    container: Container
    exe: str  # the venv's exportsync, the same path inside and out
    exports: Path  # the watch folder on the host side
    etc: Path  # /etc/exportsync on the host side
    info: DevstackInfo


def _config_text(info: DevstackInfo, watch: Path, key_file: Path, timeout: int = 10) -> str:
    return (
        f'[watch]\ndir = "{watch}"\n'
        f'[api]\nurl = "{info.api_url}"\napi_key_file = "{key_file}"\n'
        f'user_id = "{info.user_id}"\ntimeout_seconds = {timeout}\n'
        "[quota]\ndaily_requests = 0\nrequests_per_second = 20.0\nburst = 5\nquiet_seconds = 0\n"
        '[log]\nformat = "json"\n'
    )


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    venv = build_venv()
    work = tmp_path_factory.mktemp("systemd")
    exports, etc = work / "exports", work / "etc-exportsync"
    exports.mkdir()
    etc.mkdir(mode=0o755)
    etc.chmod(0o755)
    work.chmod(0o755)
    with start_devstack(work / "devstack", "--rate", "0", "--quota", "0", "--users", "2") as info:
        # The system unit reads the key as a systemd credential (LoadCredential=).
        key = etc / "api_key"
        key.write_text(info.api_key + "\n")
        key.chmod(0o600)
        config = etc / "config.toml"
        text = _config_text(info, EXPORTS, Path("/unused"))
        config.write_text(text.replace('api_key_file = "/unused"\n', ""))
        config.chmod(0o644)
        binds = {venv: venv, exports: EXPORTS, etc: CONFIG.parent}
        with ExitStack() as stack:
            try:
                c = stack.enter_context(boot(f"exportsync-test-{os.getpid()}", binds, work / "log"))
            except RuntimeError as exc:
                pytest.skip(f"systemd-nspawn could not boot a container here: {exc}")
            c.run(["useradd", "--system", "--no-create-home", ACCOUNT])
            uid = int(c.run(["id", "-u", ACCOUNT]).stdout)
            gid = int(c.run(["id", "-g", ACCOUNT]).stdout)
            os.chown(exports, uid, gid)  # one uid space: nspawn without --private-users
            yield Machine(c, str(venv / "bin" / "exportsync"), exports, etc, info)


@pytest.fixture(scope="module")
def service(machine: Machine) -> Machine:
    """The system unit installed and started, as the README's "Running as a service" says."""
    c = machine.container
    if c.show(UNIT, "ActiveState") != "active":
        c.run([machine.exe, *INSTALL])
        c.systemctl("daemon-reload")
        c.systemctl("start", UNIT)  # Type=notify: returns once READY=1 arrived
    return machine


# --- helpers ----------------------------------------------------------------------------------


def _status(machine: Machine, user: str = ACCOUNT, **env: str) -> dict[str, Any]:
    """`exportsync status --json` in a shell inside the container, as `user`."""
    command = [machine.exe, "status", "--json", "--config", str(CONFIG)]
    done = machine.container.run(command, user=user, env=env)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _counts(machine: Machine) -> dict[str, int]:
    counts: dict[str, int] = _status(machine)["counts"]
    return counts


def _main_pid(c: Container) -> int:
    return int(c.show(UNIT, "MainPID"))


def _events(c: Container, *args: str) -> list[dict[str, Any]]:
    """The daemon's own JSON lines in the journal (systemd's lines about the unit left out)."""
    out = []
    for entry in c.journal("-u", UNIT, "-t", "exportsync", *args):
        try:
            out.append(json.loads(entry["MESSAGE"]))
        except (ValueError, TypeError):
            continue
    return out


def _systemd_says(c: Container, words: str) -> bool:
    return any(words in str(e.get("MESSAGE")) for e in c.journal("-u", UNIT, "_PID=1"))


def _drop(machine: Machine, name: str, data: bytes) -> None:
    path = machine.exports / name
    path.write_bytes(data)
    path.chmod(0o644)


def _watchdog(c: Container, seconds: int) -> None:
    """A drop-in with a short WatchdogSec=, applied by a restart."""
    folder = f"/etc/systemd/system/{UNIT}.d"
    text = f"[Service]\nWatchdogSec={seconds}\n"
    c.run(["sh", "-c", f"mkdir -p {folder} && cat > {folder}/watchdog.conf"], input_text=text)
    c.systemctl("daemon-reload")
    c.systemctl("restart", UNIT)


# --- the system unit ---------------------------------------------------------------------------


def test_active_only_after_ready_and_running_as_its_account(machine: Machine) -> None:
    c = machine.container
    _drop(machine, "before-start.csv", b"a\n1\n")
    past = time.time() - 60  # written and closed a minute ago: the start-up scan takes it
    os.utime(machine.exports / "before-start.csv", (past, past))
    c.run([machine.exe, *INSTALL])
    c.systemctl("daemon-reload")
    c.systemctl("start", UNIT)
    assert c.show(UNIT, "ActiveState") == "active"
    (ready,) = [e for e in _events(c) if e.get("event") == "daemon_ready"]
    logged = datetime.fromisoformat(ready["timestamp"])
    assert (
        _unit_time(c, "ExecMainStartTimestamp") <= logged <= _unit_time(c, "ActiveEnterTimestamp")
    )
    # READY came after the start-up scan: the file already there was spooled by then.
    assert ready["pending"] + ready["sending"] + ready["delivered"] >= 1
    status = c.run(["cat", f"/proc/{_main_pid(c)}/status"]).stdout
    uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
    assert uid == c.run(["id", "-u", ACCOUNT]).stdout.strip()


def _unit_time(c: Container, prop: str) -> datetime:
    raw = c.run(["systemctl", "show", "--timestamp=us+utc", "-P", prop, UNIT]).stdout.strip()
    return datetime.strptime(raw.replace(" UTC", "+0000"), "%a %Y-%m-%d %H:%M:%S.%f%z")


def test_a_shell_on_the_machine_sees_the_services_deliveries(service: Machine) -> None:
    _drop(service, "shell.csv", b"b\n2\n")
    assert wait_for(lambda: _counts(service)["delivered"] >= 2, DEADLINE), _counts(service)


def test_the_watchdog_leaves_a_healthy_daemon_alone(service: Machine) -> None:
    c = service.container
    _watchdog(c, 4)
    pid, restarts = _main_pid(c), c.show(UNIT, "NRestarts")
    # Three watchdog periods of an idle daemon: a bounded negative check, polled.
    changed = wait_for(lambda: _main_pid(c) != pid, 12.0, interval=0.5)
    assert not changed
    assert c.show(UNIT, "NRestarts") == restarts
    assert not _systemd_says(c, "Watchdog timeout")


def test_a_stopped_daemon_is_killed_by_the_watchdog_and_restarted(service: Machine) -> None:
    c = service.container
    if c.show(UNIT, "WatchdogUSec") != "4s":
        _watchdog(c, 4)
    pid = _main_pid(c)
    c.run(["kill", "-STOP", str(pid)])
    assert wait_for(
        lambda: _main_pid(c) not in (0, pid) and c.show(UNIT, "ActiveState") == "active",
        DEADLINE,
        interval=0.5,
    ), c.systemctl("status", UNIT, check=False).stdout
    assert _systemd_says(c, "Watchdog timeout")


def test_kill_9_restarts_it_and_loses_nothing(service: Machine) -> None:
    c = service.container
    files = {f"burst-{n:02d}.csv": f"n\n{n}\n".encode() for n in range(20)}
    for name, data in files.items():
        _drop(service, name, data)
    pid = _main_pid(c)
    c.run(["kill", "-KILL", str(pid)])
    assert wait_for(
        lambda: _main_pid(c) not in (0, pid) and c.show(UNIT, "ActiveState") == "active",
        DEADLINE,
        interval=0.5,
    ), c.systemctl("status", UNIT, check=False).stdout

    def settled() -> bool:
        counts = _counts(service)
        return counts["pending"] == counts["sending"] == 0

    assert wait_for(settled, DEADLINE, interval=0.5), _counts(service)
    stored = {key.split("/")[2] for key in s3_objects(service.info)}
    for data in files.values():
        assert hashlib.sha256(data).hexdigest() in stored
    assert _counts(service)["failed"] == 0


def test_systemctl_reload_reloads_the_config(service: Machine) -> None:
    c = service.container
    pid = _main_pid(c)
    config = service.etc / "config.toml"
    config.write_text(config.read_text().replace("timeout_seconds = 10", "timeout_seconds = 11"))
    c.systemctl("reload", UNIT)

    def reloaded() -> list[dict[str, Any]]:
        return [e for e in _events(c) if e.get("event") == "config_reloaded"]

    assert wait_for(lambda: bool(reloaded()), DEADLINE, interval=0.5)
    assert reloaded()[-1]["changed"] == ["api.timeout_seconds"]
    assert _main_pid(c) == pid
    assert c.show(UNIT, "ActiveState") == "active"


def test_a_key_rotated_into_a_file_the_account_reads_takes_effect_at_reload(
    service: Machine,
) -> None:
    """docs/deploy.md: a system unit's credential is copied at start only, so for a reload to
    pick up a new key the config names a key file the service's account may read (root-owned,
    group exportsync, 640) — through the unit's sandbox (PrivateUsers=, ProtectSystem=strict)."""
    c, info = service.container, service.info
    second = info.users[1]
    key = service.etc / "api_key.rotated"
    key.write_text(second["api_key"] + "\n")
    os.chown(key, 0, int(c.run(["id", "-g", ACCOUNT]).stdout))
    key.chmod(0o640)
    config = service.etc / "config.toml"
    text = config.read_text().replace(
        f'user_id = "{info.user_id}"', f'user_id = "{second["user_id"]}"'
    )
    config.write_text(
        text.replace("[api]\n", f'[api]\napi_key_file = "{CONFIG.parent / key.name}"\n')
    )
    pid = _main_pid(c)
    c.systemctl("reload", UNIT)

    def rotated() -> bool:
        return any(
            e.get("event") == "config_reloaded" and "api.api_key" in e["changed"]
            for e in _events(c)
        )

    assert wait_for(rotated, DEADLINE, interval=0.5), _events(c)[-5:]
    assert not [e for e in _events(c) if e.get("event") == "config_warning"]
    _drop(service, "after-rotation.csv", b"r\n1\n")

    def accepted() -> int:
        counters: dict[str, int] = usage(info)["by_key"].get(second["user_id"], {})
        return counters.get("accepted", 0)

    assert wait_for(lambda: accepted() >= 1, DEADLINE, interval=0.5), _events(c)[-5:]
    assert _main_pid(c) == pid
    assert second["api_key"] not in json.dumps(_events(c))


def test_journal_priorities_show_a_failed_file_and_no_info(service: Machine) -> None:
    c = service.container
    _drop(service, "broken.session.json", b"{not json")
    assert wait_for(lambda: _counts(service)["failed"] >= 1, DEADLINE, interval=0.5)
    warnings = _events(c, "-p", "warning")
    assert any("broken.session.json" in json.dumps(e) for e in warnings), warnings
    assert {e.get("level") for e in warnings} <= {"warning", "error", "critical"}
    assert any(e.get("level") == "info" for e in _events(c))  # info lines exist, filtered out


def test_systemctl_stop_exits_0_within_seconds(service: Machine) -> None:
    c = service.container
    started = time.monotonic()
    c.systemctl("stop", UNIT)
    assert time.monotonic() - started < 15.0
    assert c.show(UNIT, "ActiveState") == "inactive"
    assert c.show(UNIT, "Result") == "success"
    assert c.show(UNIT, "ExecMainStatus") == "0"
    assert any(e.get("event") == "daemon_stopped" for e in _events(c))


# --- the user unit -----------------------------------------------------------------------------


def test_a_user_service_and_the_users_shell_share_one_spool(machine: Machine) -> None:
    c, info = machine.container, machine.info
    c.run(["useradd", "--create-home", "alice"])
    uid = c.run(["id", "-u", "alice"]).stdout.strip()
    c.systemctl("start", f"user@{uid}.service")
    env = {"HOME": "/home/alice", "USER": "alice", "XDG_RUNTIME_DIR": f"/run/user/{uid}"}

    def alice(*args: str, text: str | None = None) -> str:
        return c.run(list(args), user="alice", env=env, input_text=text).stdout

    folder = "/home/alice/.config/exportsync"
    alice("mkdir", "-p", folder, "/home/alice/Exports")
    alice("sh", "-c", f"umask 077; cat > {folder}/api_key", text=info.api_key + "\n")
    config = _config_text(info, Path("/home/alice/Exports"), Path(f"{folder}/api_key"))
    alice("sh", "-c", f"cat > {folder}/exportsync.toml", text=config)
    alice(machine.exe, "service", "install", "--user", "--config", f"{folder}/exportsync.toml")
    alice("systemctl", "--user", "daemon-reload")
    alice("systemctl", "--user", "enable", "--now", UNIT)
    alice("sh", "-c", "printf 'u\\n1\\n' > /home/alice/Exports/user.csv")

    def delivered() -> int:
        out = alice(machine.exe, "status", "--json", "--config", f"{folder}/exportsync.toml")
        counts: dict[str, int] = json.loads(out)["counts"]
        return counts["delivered"]

    assert wait_for(lambda: delivered() >= 1, DEADLINE, interval=0.5)
    # Where the shell looked is where the service wrote (not ~/.config/exportsync, 252's place).
    alice("test", "-f", "/home/alice/.local/state/exportsync/spool.sqlite3")
    assert "spool.sqlite3" not in alice("ls", folder)
    alice("systemctl", "--user", "stop", UNIT)
