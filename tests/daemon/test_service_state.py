"""The service and the shell agree: one state folder under any service manager, `systemctl reload`
reaches the daemon, launchd does not restart a config error, and no unit runs as `nobody`."""

from __future__ import annotations

import configparser
import grp
import os
import plistlib
import pwd
from pathlib import Path

import pytest

from exportsync import config as config_module
from exportsync.cli import main
from exportsync.config import SYSTEM_STATE_DIR, load_config
from exportsync.service import install, render_launchd, render_systemd

EXE = "/usr/local/bin/exportsync"


def _service(text: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser["Service"]


def _config(path: Path, watch: Path, extra: str = "") -> Path:
    watch.mkdir(parents=True, exist_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[watch]\ndir = "{watch}"\n{extra}')
    return path


@pytest.mark.parametrize("user_mode", [False, True], ids=["system", "user"])
def test_both_units_reload_with_sighup(user_mode: bool) -> None:
    text = render_systemd(
        executable=EXE,
        config_path=Path("/etc/exportsync/config.toml"),
        user_mode=user_mode,
        user=None if user_mode else "exportsync",
        state_home=Path("/home/alice/.local/state"),
    )
    assert _service(text)["ExecReload"] == "/bin/kill -HUP $MAINPID"


@pytest.mark.parametrize("xdg_state_home", [None, "/data/alice-state"])
def test_a_user_service_and_the_shell_read_one_spool_on_any_systemd(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], xdg_state_home: str | None
) -> None:
    """The user unit sets no StateDirectory= (systemd 252 would put it under ~/.config, newer
    ones under ~/.local/state) and pins the shell's XDG_STATE_HOME: the daemon under the user
    manager (HOME, and what the unit sets) resolves the folder `status` reads."""
    home = tmp_path / "home"
    config = _config(home / ".config/exportsync/exportsync.toml", home / "Exports")
    shell = {"HOME": str(home), "PATH": "/usr/bin"}
    if xdg_state_home is not None:
        shell["XDG_STATE_HOME"] = xdg_state_home
    with pytest.MonkeyPatch.context() as patch:
        for key in ("XDG_STATE_HOME", "STATE_DIRECTORY", "EXPORTSYNC_STATE_DIR"):
            patch.delenv(key, raising=False)
        patch.setenv("HOME", str(home))
        if xdg_state_home is not None:
            patch.setenv("XDG_STATE_HOME", xdg_state_home)
        assert main(["service", "print", "--user", "--config", str(config)]) == 0
    service = _service(capsys.readouterr().out)
    assert "StateDirectory" not in service
    name, _, value = service["Environment"].strip('"').partition("=")
    assert name == "XDG_STATE_HOME"
    manager = {"HOME": str(home), name: value}  # a user manager's environment plus the unit's
    in_service = load_config(config, env=manager, require_api=False).state.dir
    in_shell = load_config(config, env=shell, require_api=False).state.dir
    assert in_service == in_shell
    expected = Path(xdg_state_home or home / ".local/state") / "exportsync"
    assert in_shell == expected


def test_a_system_service_and_the_shell_read_one_spool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config in /etc/exportsync keeps its spool in /var/lib/exportsync, the system unit's
    StateDirectory=, whoever runs the command."""
    etc = tmp_path / "etc/exportsync"
    monkeypatch.setattr(config_module, "SYSTEM_CONFIG_DIR", etc)
    config = _config(etc / "config.toml", tmp_path / "srv/exports")
    for env in ({"HOME": "/root"}, {"HOME": "/home/alice", "XDG_STATE_HOME": "/x"}):
        assert load_config(config, env=env, require_api=False).state.dir == SYSTEM_STATE_DIR
    under_systemd = {"STATE_DIRECTORY": str(SYSTEM_STATE_DIR)}
    assert load_config(config, env=under_systemd, require_api=False).state.dir == SYSTEM_STATE_DIR
    argv = ["service", "print", "--system", "--run-as", "root", "--config", str(config)]
    assert main(argv) == 0
    assert _service(capsys.readouterr().out)["StateDirectory"] == "exportsync"


def test_a_system_service_refuses_a_config_whose_shell_spool_would_differ(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path / "cfg/exportsync.toml", tmp_path / "exports")
    argv = ["service", "print", "--system", "--run-as", "root", "--config", str(config)]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "state.dir" in err
    assert f'dir = "{SYSTEM_STATE_DIR}"' in err
    _config(config, tmp_path / "exports", f'[state]\ndir = "{tmp_path / "state"}"\n')
    assert main(argv) == 0


def test_run_as_nobody_is_refused_with_the_account_to_create(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path / "exportsync.toml", tmp_path / "exports", '[state]\ndir = "/s"\n')
    for action in ("print", "install"):
        argv = ["service", action, "--system", "--run-as", "nobody", "--config", str(config)]
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert "useradd --system exportsync" in err


def test_launchd_does_not_restart_a_config_error() -> None:
    """launchd restarts every non-zero exit (KeepAlive SuccessfulExit=false) and has no
    RestartPreventExitStatus=: the plist has `run` exit 0 on a config error, which the log
    explains, so a broken config is not retried every ThrottleInterval."""
    for user_mode in (True, False):
        plist = plistlib.loads(
            render_launchd(
                executable=EXE,
                config_path=Path("/etc/exportsync/config.toml"),
                user_mode=user_mode,
                log_dir=Path("/var/log/exportsync"),
                user=None if user_mode else "alice",
            ).encode()
        )
        assert plist["KeepAlive"] == {"SuccessfulExit": False}
        args = plist["ProgramArguments"]
        assert args[args.index("--config-error-exit") + 1] == "0"


def test_run_exits_as_told_on_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "exportsync.toml"
    config.write_text("[watch]\n")  # no watch.dir, no api
    assert main(["run", "--config", str(config)]) == 2
    assert "config error" in capsys.readouterr().err
    assert main(["run", "--config", str(config), "--config-error-exit", "0"]) == 0
    err = capsys.readouterr().err
    assert "config error" in err
    assert "not restarted" in err


def test_a_launch_daemon_gets_its_state_folder_made_for_its_account(tmp_path: Path) -> None:
    """launchd has no StateDirectory=: `service install --system --launchd` makes the folder a
    config in /etc/exportsync keeps its spool in, owned by the daemon's account, private."""
    me = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    install(
        "launchd",
        executable=EXE,
        config_path=Path("/etc/exportsync/config.toml"),
        user_mode=False,
        user=me,
        group=group,
        root=tmp_path,
    )
    made = tmp_path / SYSTEM_STATE_DIR.relative_to("/")
    assert made.is_dir()
    assert made.stat().st_mode & 0o777 == 0o700
    assert made.stat().st_uid == os.geteuid()
