"""The `exportsync` command, called as `main([...])`: exit codes, output, never the key."""

from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from exportsync import procinfo
from exportsync.cli import main
from exportsync.runlock import WAKE_SIGNAL, RunLock
from exportsync.spool import SEND_NOW_KEY, Spool

KEY = "cli-test-key-SECRET-7f3a9c"


@dataclass
class Env:
    tmp: Path
    watch: Path
    state: Path

    def config(self, body: str | None = None, *, url: str = "http://127.0.0.1:9/prod") -> Path:
        """A config file; by default complete (watch.dir, state.dir, api.url and api.api_key)."""
        if body is None:
            body = (
                f'[watch]\ndir = "{self.watch}"\n[state]\ndir = "{self.state}"\n'
                f'[api]\nurl = "{url}"\napi_key = "{KEY}"\nuser_id = "alice"\n'
            )
        path = self.tmp / "exportsync.toml"
        path.write_text(body, encoding="utf-8")
        path.chmod(0o600)
        return path


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    """Nothing from the real environment or home leaks in."""
    for name in list(os.environ):
        if name.startswith("EXPORTSYNC_") or name in (
            "CREDENTIALS_DIRECTORY",
            "STATE_DIRECTORY",
            "NOTIFY_SOCKET",
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "home" / ".local" / "state"))
    monkeypatch.setattr("exportsync.configpath.SYSTEM_CONFIG", tmp_path / "etc" / "config.toml")
    watch = tmp_path / "exports"
    watch.mkdir()
    return Env(tmp_path, watch, tmp_path / "state")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def status_json(capsys: pytest.CaptureFixture[str], config: Path) -> dict[str, Any]:
    code, out, err = run(capsys, "status", "--json", "--config", str(config))
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


# -- status ----------------------------------------------------------------------------------------


def test_status_json_on_a_fresh_state_dir(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    doc = status_json(capsys, env.config())
    assert doc["counts"] == {"pending": 0, "sending": 0, "delivered": 0, "failed": 0}
    assert set(doc["quota"]) >= {"used", "limit", "resets_at"}
    assert (doc["quota"]["used"], doc["quota"]["limit"]) == (0, 10)
    assert doc["quota"]["resets_at"].endswith("T00:00:00Z")
    assert doc["failed"] == []
    assert not env.state.exists()  # status is read-only: no daemon ran, nothing is created


def test_status_needs_no_api_settings(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    config = env.config(f'[state]\ndir = "{env.state}"\n')
    doc = status_json(capsys, config)
    assert doc["counts"]["pending"] == 0


def test_status_table_mentions_the_counts(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "status", "--config", str(env.config()))
    assert code == 0
    for word in ("pending", "sending", "delivered", "failed", "quota"):
        assert word in out


def test_config_may_come_from_the_environment_or_before_the_command(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = env.config()
    code, out, _ = run(capsys, "--config", str(config), "status", "--json")
    assert code == 0
    assert json.loads(out)["state_dir"] == str(env.state)
    monkeypatch.setenv("EXPORTSYNC_CONFIG", str(config))
    code, out, _ = run(capsys, "status", "--json")
    assert code == 0
    assert json.loads(out)["state_dir"] == str(env.state)


# -- config errors: exit 2, the key named ----------------------------------------------------------


def test_an_unknown_key_exits_2_naming_it(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    config = env.config(f'[watch]\ndir = "{env.watch}"\ndirectory = "x"\n')
    code, _, err = run(capsys, "status", "--config", str(config))
    assert code == 2
    assert "watch.directory" in err


def test_a_bad_api_url_exits_2_naming_it(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    config = env.config(url="http://example.com/prod")  # plain http off loopback
    code, _, err = run(capsys, "check", "--config", str(config))
    assert code == 2
    assert "api.url" in err


def test_run_without_watch_dir_exits_2_naming_it(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    config = env.config(
        f'[state]\ndir = "{env.state}"\n[api]\nurl = "http://127.0.0.1:9/p"\napi_key = "{KEY}"\n'
    )
    code, _, err = run(capsys, "run", "--config", str(config))
    assert code == 2
    assert "watch.dir" in err
    assert not (env.state / "exportsync.lock").exists()  # nothing started


def test_run_hands_the_gil_over_within_a_millisecond(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The intake gives the GIL up at each system call; at Python's default 5 ms it waited that
    long to get it back each time the delivery thread was busy building a request."""
    from exportsync.cli import run as run_module  # noqa: PLC0415 -- the module, not the command

    intervals: list[float] = []
    monkeypatch.setattr(run_module, "_run_until_stopped", lambda _daemon, _inbox: [])
    # The logs would go to the stdout capsys captures, and outlive this test.
    monkeypatch.setattr(run_module, "configure_logging", lambda *_args, **_kwargs: None)
    monkeypatch.setattr(sys, "setswitchinterval", intervals.append)
    code, _, err = run(capsys, "run", "--config", str(env.config()))
    assert code == 0, err
    assert intervals == [run_module.GIL_SWITCH_SECONDS]
    assert run_module.GIL_SWITCH_SECONDS <= 0.001


def test_a_missing_config_file_exits_2(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "status", "--config", str(env.tmp / "nope.toml"))
    assert code == 2
    assert "config" in err


# -- enqueue ---------------------------------------------------------------------------------------


def test_enqueue_a_file_inside_watch_dir(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    config = env.config()
    (env.watch / "a.csv").write_text("id\n1\n")
    code, out, _ = run(capsys, "enqueue", "--config", str(config), str(env.watch / "a.csv"))
    assert code == 0
    assert "queued as item 1" in out
    assert status_json(capsys, config)["counts"]["pending"] == 1
    # Again: the same version is recognised, not queued twice.
    code, out, _ = run(capsys, "enqueue", "--config", str(config), str(env.watch / "a.csv"))
    assert code == 0
    assert "already spooled" in out
    assert status_json(capsys, config)["counts"]["pending"] == 1


def test_enqueue_a_file_outside_watch_dir_exits_1(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    config = env.config()
    outside = env.tmp / "elsewhere.csv"
    outside.write_text("x")
    code, _, err = run(capsys, "enqueue", "--config", str(config), str(outside))
    assert code == 1
    assert "not inside watch.dir" in err
    assert status_json(capsys, config)["counts"]["pending"] == 0


@pytest.mark.parametrize("name", ["notes.txt", "gone.csv", "../exports/../x.csv"])
def test_enqueue_what_cannot_be_spooled_exits_1(
    env: Env, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    config = env.config()
    (env.watch / "notes.txt").write_text("x")
    code, _, _ = run(capsys, "enqueue", "--config", str(config), str(env.watch / name))
    assert code == 1
    assert status_json(capsys, config)["counts"] == {
        "pending": 0,
        "sending": 0,
        "delivered": 0,
        "failed": 0,
    }


def test_enqueue_needs_watch_dir(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    config = env.config(f'[state]\ndir = "{env.state}"\n')
    code, _, err = run(capsys, "enqueue", "--config", str(config), str(env.watch / "a.csv"))
    assert code == 2
    assert "watch.dir" in err


# -- retry -----------------------------------------------------------------------------------------


def test_retry_all_failed_puts_them_back_to_pending(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    config = env.config()
    (env.watch / "a.csv").write_text("x")
    assert run(capsys, "enqueue", "--config", str(config), str(env.watch / "a.csv"))[0] == 0
    with Spool.open(env.state) as spool:
        spool.mark_failed(1, "refused by the API: bad", now=1.0)
    doc = status_json(capsys, config)
    assert doc["failed"] == [
        {
            "id": 1,
            "path": str(env.watch / "a.csv"),
            "reason": "refused by the API: bad",
            "kind": "csv",
            "attempts": 1,
            "failed_at": doc["failed"][0]["failed_at"],
        }
    ]

    code, out, _ = run(capsys, "retry", "--all-failed", "--config", str(config))
    assert code == 0
    assert "1 item queued again" in out
    doc = status_json(capsys, config)
    assert (doc["counts"]["pending"], doc["counts"]["failed"]) == (1, 0)
    assert doc["pending"][0]["attempts"] == 0


def test_retry_by_id_and_of_a_non_failed_item(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    config = env.config()
    (env.watch / "a.csv").write_text("x")
    run(capsys, "enqueue", "--config", str(config), str(env.watch / "a.csv"))
    code, out, _ = run(capsys, "retry", "1", "--config", str(config))
    assert code == 0  # pending: it goes at the next send
    assert "1: goes at the next send" in out
    code, _, _err = run(capsys, "retry", "99", "--config", str(config))
    assert code == 1
    with Spool.open(env.state) as spool:
        spool.mark_failed(1, "x", now=1.0)
    code, out, _ = run(capsys, "retry", "1", "--config", str(config))
    assert code == 0
    assert "pending again" in out


def test_retry_with_nothing_to_retry(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    config = env.config()
    assert run(capsys, "retry", "--all-failed", "--config", str(config))[0] == 0
    code, _, err = run(capsys, "retry", "--config", str(config))
    assert code == 2
    assert "--all-failed" in err


def test_retry_re_examines_a_rejected_symlink(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    config = env.config()
    target = env.tmp / "target.csv"
    target.write_text("x")
    link = env.watch / "a.csv"
    link.symlink_to(target)
    code, out, _ = run(capsys, "enqueue", "--config", str(config), str(link))
    assert code == 0
    assert "failed" in out
    assert "symlink" in out
    doc = status_json(capsys, config)
    assert doc["counts"]["failed"] == 1
    [failed] = doc["failed"]

    # Still a symlink: examined again and refused again.
    code, out, _ = run(capsys, "retry", str(failed["id"]), "--config", str(config))
    assert "re-examined" in out
    assert status_json(capsys, config)["counts"]["failed"] == 1

    # Replaced by a real file: now it is spooled.
    link.unlink()
    link.write_text("now a file\n")
    [failed] = status_json(capsys, config)["failed"]
    code, out, _ = run(capsys, "retry", "--all-failed", "--config", str(config))
    assert code == 0
    assert "re-examined" in out
    doc = status_json(capsys, config)
    assert (doc["counts"]["pending"], doc["counts"]["failed"]) == (1, 0)
    assert doc["pending"][0]["path"] == str(link)


# -- check -----------------------------------------------------------------------------------------


@dataclass
class Listener:
    port: int
    received: bytearray
    connections: int
    done: threading.Event


@pytest.fixture
def listener() -> Iterator[Listener]:
    """A loopback socket that accepts one connection and records every byte sent on it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(10)
    state = Listener(server.getsockname()[1], bytearray(), 0, threading.Event())

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            state.done.set()
            return
        state.connections += 1
        with conn:
            conn.settimeout(10)
            while chunk := conn.recv(65536):
                state.received += chunk
        state.done.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield state
    server.close()
    thread.join(10)


def test_check_passes_against_a_listening_port_without_sending_a_request(
    env: Env, capsys: pytest.CaptureFixture[str], listener: Listener
) -> None:
    config = env.config(url=f"http://127.0.0.1:{listener.port}/prod")
    code, out, _ = run(capsys, "check", "--config", str(config))
    assert code == 0, out
    assert "all checks passed" in out
    assert listener.done.wait(10)
    assert listener.connections == 1
    assert bytes(listener.received) == b""  # no HTTP request, not one byte: no quota spent


def test_check_fails_when_nothing_listens(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, never listening: connection refused
        port = unused.getsockname()[1]
        config = env.config(url=f"http://127.0.0.1:{port}/prod")
        code, out, _ = run(capsys, "check", "--config", str(config))
    assert code == 1
    assert f"FAIL  api.url 127.0.0.1:{port} unreachable" in out


def test_a_missing_watch_dir_is_one_warning_as_run_treats_it(
    env: Env, capsys: pytest.CaptureFixture[str], listener: Listener
) -> None:
    env.watch.rmdir()
    config = env.config(url=f"http://127.0.0.1:{listener.port}/prod")
    code, out, _ = run(capsys, "check", "--config", str(config))
    assert code == 0, out  # `run` waits for the folder to appear: a waiting state, not a fault
    assert [line for line in out.splitlines() if "watch.dir" in line] == [
        f"warn  watch.dir {env.watch} does not exist yet (the daemon waits for it to appear)"
    ]
    assert "FAIL" not in out


def test_check_needs_an_api_key(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    config = env.config(
        f'[watch]\ndir = "{env.watch}"\n[state]\ndir = "{env.state}"\n'
        '[api]\nurl = "http://127.0.0.1:9/prod"\n'
    )
    code, _, err = run(capsys, "check", "--config", str(config))
    assert code == 2
    assert "api.api_key" in err


# -- service ---------------------------------------------------------------------------------------


def test_service_print_user_renders_a_unit(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    config = env.config()
    code, out, _ = run(capsys, "service", "print", "--user", "--config", str(config))
    assert code == 0
    [exec_start] = [line for line in out.splitlines() if line.startswith("ExecStart=")]
    assert "--config" in exec_start
    assert str(config) in exec_start
    assert " run" in exec_start
    assert "[Service]" in out


def test_service_needs_a_scope_and_a_config_file(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["service", "print", "--config", str(env.config())])
    assert info.value.code == 2
    capsys.readouterr()
    monkeypatch.setenv("EXPORTSYNC_WATCH_DIR", str(env.watch))
    code, _, err = run(capsys, "service", "print", "--user")
    assert code == 2
    assert "config" in err


# -- help and usage --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["run"],
        ["status"],
        ["retry"],
        ["enqueue"],
        ["check"],
        ["service"],
        ["setup"],
    ],
    ids=["top", "run", "status", "retry", "enqueue", "check", "service", "setup"],
)
def test_help_exits_0(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: exportsync")
    if argv:
        assert "--config" in out


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["retry", "abc"], ["enqueue"]])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2


# -- the key never shows ---------------------------------------------------------------------------


def test_no_command_prints_the_api_key(
    env: Env, capsys: pytest.CaptureFixture[str], listener: Listener
) -> None:
    config = env.config(url=f"http://127.0.0.1:{listener.port}/prod")
    (env.watch / "a.csv").write_text("x")
    outputs: list[str] = []
    for argv in (
        ["status"],
        ["status", "--json"],
        ["check"],
        ["service", "print", "--user"],
        ["service", "print", "--system", "--run-as", pwd.getpwuid(os.getuid()).pw_name],
        ["enqueue", str(env.watch / "a.csv")],
        ["retry", "--all-failed"],
    ):
        code, out, err = run(capsys, *argv, "--config", str(config))
        assert code in (0, 1), (argv, err)
        outputs += [out, err]
    combined = "\n".join(outputs)
    assert "api key present (not shown)" in combined
    assert "ExecStart=" in combined
    assert KEY not in combined


# -- where the config is found (CONTRACT §3a) ------------------------------------------------------


def _user_config(env: Env) -> Path:
    path = env.tmp / "home" / ".config" / "exportsync" / "exportsync.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(env.config().read_text())
    return path


def test_every_command_finds_the_user_config_that_setup_writes(
    env: Env, capsys: pytest.CaptureFixture[str], listener: Listener
) -> None:
    path = _user_config(env)
    path.write_text(path.read_text().replace("127.0.0.1:9", f"127.0.0.1:{listener.port}"))
    code, out, err = run(capsys, "status", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["config"], doc["state_dir"]) == (str(path), str(env.state))
    code, out, _ = run(capsys, "check")
    assert code == 0, out
    assert f"ok    config {path}" in out


def test_the_environment_comes_before_the_user_config_and_etc_comes_last(
    env: Env,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    system = env.tmp / "etc" / "config.toml"
    system.parent.mkdir()
    system.write_text(f'[watch]\ndir = "{env.watch}"\n[state]\ndir = "{env.tmp / "etc-state"}"\n')
    assert json.loads(run(capsys, "status", "--json")[1])["config"] == str(system)
    user = _user_config(env)
    assert json.loads(run(capsys, "status", "--json")[1])["config"] == str(user)
    named = env.tmp / "named.toml"
    named.write_text(system.read_text())
    monkeypatch.setenv("EXPORTSYNC_CONFIG", str(named))
    assert json.loads(run(capsys, "status", "--json")[1])["config"] == str(named)


@pytest.mark.parametrize("command", ["status", "run", "check", "retry --all-failed", "send-now"])
def test_no_config_anywhere_exits_2_listing_the_paths_and_naming_setup(
    env: Env, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    code, out, err = run(capsys, *command.split())
    assert code == 2
    assert out == ""  # never a report of built-in defaults
    assert str(env.tmp / "home" / ".config" / "exportsync" / "exportsync.toml") in err
    assert str(env.tmp / "etc" / "config.toml") in err
    assert "exportsync setup" in err


def test_status_shows_no_default_folder_as_if_it_were_configured(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    config = env.config(f'[state]\ndir = "{env.state}"\n')
    assert status_json(capsys, config)["watch_dir"] is None
    _code, out, _ = run(capsys, "status", "--config", str(config))
    assert "watch.dir is not set" in out
    assert "Exports" not in out


# -- dismiss, retry of a waiting item --------------------------------------------------------------


def _failed_items(env: Env, capsys: pytest.CaptureFixture[str], config: Path, n: int) -> None:
    for i in range(n):
        (env.watch / f"f{i}.csv").write_text(str(i))
        run(capsys, "enqueue", "--config", str(config), str(env.watch / f"f{i}.csv"))
    with Spool.open(env.state) as spool:
        for item_id in range(1, n + 1):
            spool.mark_failed(item_id, "refused by the API: bad_csv", now=1.0)


def test_dismiss_takes_failed_items_off_the_list(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    config = env.config()
    _failed_items(env, capsys, config, 3)
    code, out, _ = run(capsys, "dismiss", "2", "--config", str(config))
    assert (code, out) == (0, "1 failed item dismissed\n")
    doc = status_json(capsys, config)
    assert doc["counts"]["failed"] == 2
    assert [f["id"] for f in doc["failed"]] == [1, 3]
    code, _, err = run(capsys, "dismiss", "2", "--config", str(config))
    assert code == 1
    assert "2: not on the failed list" in err
    code, out, _ = run(capsys, "dismiss", "--all", "--config", str(config))
    assert (code, out) == (0, "2 failed items dismissed\n")
    doc = status_json(capsys, config)
    assert (doc["counts"]["failed"], doc["failed"]) == (0, [])
    assert run(capsys, "dismiss", "--config", str(config))[0] == 2


def test_retry_takes_a_pending_item_out_of_its_backoff(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    config = env.config()
    (env.watch / "a.csv").write_text("x")
    run(capsys, "enqueue", "--config", str(config), str(env.watch / "a.csv"))
    later = time.time() + 300
    with Spool.open(env.state) as spool:
        spool.reschedule(1, at=later, error="Forbidden", now=time.time())
    code, out, _ = run(capsys, "retry", "1", "--config", str(config))
    assert code == 0
    assert "1: goes at the next send" in out
    with Spool.open(env.state) as spool:
        item = spool.get(1)
        assert item is not None
        assert item.state == "pending"
        assert item.next_attempt_at <= time.time()


# -- send-now --------------------------------------------------------------------------------------


def test_send_now_without_a_running_daemon_exits_1_saying_so(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "send-now", "--config", str(env.config()))
    assert code == 1
    assert "no daemon is running" in err


@pytest.fixture
def lock_held(env: Env, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """This process holds the run lock as a daemon would, and counts the wake signals."""
    woken: list[int] = []
    previous = signal.signal(WAKE_SIGNAL, lambda signum, _frame: woken.append(signum))
    monkeypatch.setattr("exportsync.cli.send_now.SEND_NOW_WAIT_SECONDS", 0.2)
    # This test process stands in for `exportsync run`: wakes go only to such a process.
    env.state.mkdir(parents=True, exist_ok=True)
    owner = os.stat(env.state).st_uid
    argv = ("/usr/bin/python3", "/usr/bin/exportsync", "run")
    monkeypatch.setattr(procinfo, "describe", lambda pid: procinfo.ProcessInfo(owner, owner, argv))
    lock = RunLock(env.state)
    lock.acquire()
    yield woken
    lock.release()
    signal.signal(WAKE_SIGNAL, previous)


def test_send_now_prints_the_cost_records_the_request_and_wakes_the_daemon(
    env: Env, capsys: pytest.CaptureFixture[str], lock_held: list[int]
) -> None:
    config = env.config()
    for name in ("a.csv", "b.csv"):
        (env.watch / name).write_text(name)
        run(capsys, "enqueue", "--config", str(config), str(env.watch / name))
    with Spool.open(env.state) as spool:
        spool.quota_spend(spool_period_start(), at=time.time() - 60)
        spool.reschedule(2, at=time.time() + 300, error="HTTP 503", now=time.time())
    lock_held.clear()
    code, out, _ = run(capsys, "send-now", "--config", str(config))
    assert code == 0
    assert out.splitlines()[0] == "sending 2 items in 1 request (request 2 of 10 today)"
    assert lock_held == [WAKE_SIGNAL]
    with Spool.open(env.state) as spool:
        assert spool.meta_get(SEND_NOW_KEY) is not None
        assert len(spool.due(time.time())) == 2  # the item in backoff goes too


def test_send_now_with_no_request_left_exits_1_with_the_reset(
    env: Env, capsys: pytest.CaptureFixture[str], lock_held: list[int]
) -> None:
    config = env.config()
    (env.watch / "a.csv").write_text("a")
    run(capsys, "enqueue", "--config", str(config), str(env.watch / "a.csv"))
    with Spool.open(env.state) as spool:
        spool.quota_raise_to(spool_period_start(), 10)
    code, _, err = run(capsys, "send-now", "--config", str(config))
    assert code == 1
    assert "no request left today (10 of 10 used)" in err
    assert "T00:00:00Z" in err


def spool_period_start() -> float:
    now = time.time()
    return now - now % 86400


# -- check, version, completion --------------------------------------------------------------------


def test_check_without_probe_says_it_did_not_test_the_key(
    env: Env, capsys: pytest.CaptureFixture[str], listener: Listener
) -> None:
    config = env.config(url=f"http://127.0.0.1:{listener.port}/prod")
    code, out, _ = run(capsys, "check", "--config", str(config))
    assert code == 0
    assert "the API key was not tested" in out
    assert "check --probe" in out


def test_version_has_a_short_flag(capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("-V", "--version"):
        with pytest.raises(SystemExit) as exited:
            main([flag])
        assert exited.value.code == 0
        assert capsys.readouterr().out.startswith("exportsync ")


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_is_generated_from_the_parser(
    shell: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "completion", shell)
    assert code == 0
    for word in ("send-now", "dismiss", "probe", "all-failed"):
        assert word in out


def test_config_errors_point_to_nothing_the_installed_package_lacks(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """The wheel carries no config/exportsync.example.toml: no message sends people there."""
    config = env.config(f'[state]\ndir = "{env.state}"\n')
    code, _, err = run(capsys, "run", "--config", str(config))
    assert code == 2
    assert "watch.dir" in err
    assert "exportsync setup" in err
    assert "example.toml" not in err


def test_help_names_every_option_and_shows_the_interval_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["setup", "--help"])
    setup_help = capsys.readouterr().out
    assert "--api-url URL the API's base URL" in " ".join(setup_help.split())
    with pytest.raises(SystemExit):
        main(["status", "--help"])
    assert "(default: 1.0)" in capsys.readouterr().out
