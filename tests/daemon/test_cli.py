"""The `exportsync` command, called as `main([...])`: exit codes, output, never the key."""

from __future__ import annotations

import json
import os
import pwd
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from exportsync.cli import main
from exportsync.spool import Spool

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
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "home" / ".local" / "state"))
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


# -- status ---------------------------------------------------------------------------------------


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


# -- config errors: exit 2, the key named ---------------------------------------------------------


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


def test_a_missing_config_file_exits_2(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "status", "--config", str(env.tmp / "nope.toml"))
    assert code == 2
    assert "config" in err


# -- enqueue --------------------------------------------------------------------------------------


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


# -- retry ----------------------------------------------------------------------------------------


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
    assert "1 item(s) queued again" in out
    doc = status_json(capsys, config)
    assert (doc["counts"]["pending"], doc["counts"]["failed"]) == (1, 0)
    assert doc["pending"][0]["attempts"] == 0


def test_retry_by_id_and_of_a_non_failed_item(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    config = env.config()
    (env.watch / "a.csv").write_text("x")
    run(capsys, "enqueue", "--config", str(config), str(env.watch / "a.csv"))
    code, _, err = run(capsys, "retry", "1", "--config", str(config))
    assert code == 1  # pending, not failed
    assert "1: not a failed item" in err
    code, _, err = run(capsys, "retry", "99", "--config", str(config))
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


# -- check ----------------------------------------------------------------------------------------


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


def test_check_fails_when_watch_dir_is_missing(
    env: Env, capsys: pytest.CaptureFixture[str], listener: Listener
) -> None:
    env.watch.rmdir()
    config = env.config(url=f"http://127.0.0.1:{listener.port}/prod")
    code, out, _ = run(capsys, "check", "--config", str(config))
    assert code == 1
    assert "FAIL  watch.dir" in out


def test_check_needs_an_api_key(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    config = env.config(
        f'[watch]\ndir = "{env.watch}"\n[state]\ndir = "{env.state}"\n'
        '[api]\nurl = "http://127.0.0.1:9/prod"\n'
    )
    code, _, err = run(capsys, "check", "--config", str(config))
    assert code == 2
    assert "api.api_key" in err


# -- service --------------------------------------------------------------------------------------


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


# -- help and usage -------------------------------------------------------------------------------


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


# -- the key never shows --------------------------------------------------------------------------


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
