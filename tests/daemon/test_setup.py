"""`exportsync setup`: a first run that writes a config and a 0600 key file, checks, and offers
the user service; unattended with flags."""

from __future__ import annotations

import io
import os
import socket
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from exportsync.cli import main
from exportsync.config import load_config
from exportsync.errors import ConfigError
from exportsync.firstrun import Prompter, gather

KEY = "sk-setup-test-9f8e7d6c5b4a"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home and config folder of the test's own; stdin is no terminal."""
    for name in list(os.environ):
        if name.startswith("EXPORTSYNC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "home" / ".local" / "state"))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    return tmp_path / "home"


@pytest.fixture
def api_port() -> Iterator[int]:
    """Something listening on loopback, so `check` finds the API host reachable."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server.getsockname()[1]
    server.close()


def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "given-key"
    path.write_text(KEY + "\n")
    return path


def flags(tmp_path: Path, port: int, *extra: str) -> list[str]:
    return [
        "setup",
        "--api-url", f"http://127.0.0.1:{port}/prod",
        "--api-key-file", str(key_file(tmp_path)),
        "--watch-dir", str(tmp_path / "Exports"),
        "--user-id", "alice",
        *extra,
    ]  # fmt: skip


def test_unattended_setup_writes_config_and_private_key(
    home: Path, tmp_path: Path, api_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(flags(tmp_path, api_port, "--no-service")) == 0
    out = capsys.readouterr().out
    config = home / ".config" / "exportsync" / "exportsync.toml"
    key = config.parent / "api_key"
    assert "all checks passed" in out
    assert KEY not in out
    assert KEY not in config.read_text()
    assert tomllib.loads(config.read_text())["api"]["api_key_file"] == str(key)
    assert key.read_text().strip() == KEY
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (tmp_path / "Exports").is_dir()
    loaded = load_config(config, env={})
    assert loaded.watch.dir == tmp_path / "Exports"
    assert loaded.api.user_id == "alice"
    assert loaded.api.api_key is not None
    assert loaded.api.api_key.reveal() == KEY
    assert not (home / ".config" / "systemd").exists()  # --no-service


def test_yes_installs_the_user_service(
    home: Path, tmp_path: Path, api_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "cfg" / "exportsync.toml"
    assert main([*flags(tmp_path, api_port, "--yes"), "--config", str(target)]) == 0
    unit = home / ".config" / "systemd" / "user" / "exportsync.service"
    assert f"--config {target}" in unit.read_text()
    assert "systemctl --user enable --now exportsync.service" in capsys.readouterr().out


def test_key_from_stdin(
    home: Path, tmp_path: Path, api_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(KEY + "\n"))
    argv = [
        "setup",
        "--api-url", f"http://127.0.0.1:{api_port}/prod",
        "--api-key-stdin",
        "--watch-dir", str(tmp_path / "Exports"),
        "--no-service",
    ]  # fmt: skip
    assert main(argv) == 0
    assert (home / ".config" / "exportsync" / "api_key").read_text().strip() == KEY


def test_missing_answers_without_a_terminal_exit_2_naming_the_flag(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["setup", "--api-key-file", str(key_file(tmp_path))]) == 2
    assert "--api-url" in capsys.readouterr().err
    assert main(["setup", "--api-url", "http://127.0.0.1:9/prod"]) == 2
    assert "--api-key" in capsys.readouterr().err


def test_invalid_answers_exit_2_and_write_nothing(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = flags(tmp_path, 443, "--no-service")
    argv[argv.index("--api-url") + 1] = "http://api.example.test/prod"  # http off loopback
    assert main(argv) == 2
    assert "api.url" in capsys.readouterr().err
    assert not (home / ".config" / "exportsync").exists()


def test_an_existing_config_is_kept_unless_forced(
    home: Path, tmp_path: Path, api_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(flags(tmp_path, api_port, "--no-service")) == 0
    assert main(flags(tmp_path, api_port, "--no-service")) == 2
    assert "--force" in capsys.readouterr().err
    assert main(flags(tmp_path, api_port, "--no-service", "--force")) == 0


def test_a_failed_check_is_reported_and_installs_nothing(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = flags(tmp_path, 9, "--yes")  # nothing listens on port 9
    assert main(argv) == 1
    assert "fix the failed check" in capsys.readouterr().out
    assert not (home / ".config" / "systemd").exists()


def test_questions_on_a_terminal() -> None:
    answers = iter(["https://api.example.test/prod", "", "bob"])
    prompter = Prompter(
        interactive=True, ask=lambda _: next(answers), ask_secret=lambda _: KEY + "\n"
    )
    got = gather(prompter, api_url=None, api_key=None, watch_dir=None, user_id=None)
    assert got.api_url == "https://api.example.test/prod"
    assert got.api_key == KEY
    assert got.watch_dir == Path.home() / "Exports"  # the offered default
    assert got.user_id == "bob"
    with pytest.raises(ConfigError, match="--api-url"):
        gather(
            Prompter(interactive=True, ask=lambda _: ""),
            api_url=None, api_key=KEY, watch_dir=None, user_id=None,
        )  # fmt: skip


def test_two_configs_in_one_folder_keep_a_key_file_each(
    home: Path, tmp_path: Path, api_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "cfg"
    other = tmp_path / "other-key"
    other.write_text("sk-second-key-0000\n")
    assert (
        main([*flags(tmp_path, api_port, "--no-service"), "--config", str(folder / "a.toml")]) == 0
    )
    second = [*flags(tmp_path, api_port, "--no-service"), "--config", str(folder / "b.toml")]
    second[second.index("--api-key-file") + 1] = str(other)
    assert main(second) == 0
    a = load_config(folder / "a.toml", env={}).api.api_key
    b = load_config(folder / "b.toml", env={}).api.api_key
    assert a is not None
    assert b is not None
    assert (a.reveal(), b.reveal()) == (KEY, "sk-second-key-0000")  # neither replaced the other
    assert {p.name for p in folder.iterdir()} == {"a.toml", "a.api_key", "b.toml", "b.api_key"}


def test_setup_never_replaces_a_different_key_without_force(
    home: Path, tmp_path: Path, api_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    key = home / ".config" / "exportsync" / "api_key"
    key.parent.mkdir(parents=True)
    key.write_text("sk-someone-elses-key\n")
    assert main(flags(tmp_path, api_port, "--no-service")) == 2
    assert "already holds a different API key" in capsys.readouterr().err
    assert key.read_text() == "sk-someone-elses-key\n"
    assert main(flags(tmp_path, api_port, "--no-service", "--force")) == 0
    assert key.read_text().strip() == KEY


def test_setup_says_the_keys_user_was_not_checked(
    home: Path, tmp_path: Path, api_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(flags(tmp_path, api_port, "--no-service")) == 0
    out = capsys.readouterr().out
    assert "the key's user was not checked against --user-id alice" in out
    assert "exportsync check --probe" in out
