"""Service files: the rendered systemd unit and launchd plist, install/uninstall, the examples."""

from __future__ import annotations

import configparser
import os
import plistlib
from pathlib import Path

import pytest

from exportsync.service import (
    LAUNCHD_AGENT_LABEL,
    InstallResult,
    default_log_dir,
    install,
    render_launchd,
    render_systemd,
    service_path,
    uninstall,
)

REPO = Path(__file__).resolve().parents[2]
EXE = "/usr/local/bin/exportsync"
CONFIG = Path("/etc/exportsync/config.toml")


def unit(text: str) -> configparser.ConfigParser:
    """Parse a unit file (INI-like; of a repeated key such as SystemCallFilter=, the last one)."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def test_system_unit_has_the_contract_settings() -> None:
    text = render_systemd(
        executable=EXE, config_path=CONFIG, user_mode=False, user="alice", watch_dir=Path("/srv/x")
    )
    service = unit(text)["Service"]
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert service["ExecStart"] == f"{EXE} run --config {CONFIG}"
    assert service["User"] == "alice"
    assert service["WatchdogSec"] == "60"
    assert service["Restart"] == "on-failure"
    assert service["RestartSec"] == "5"
    assert service["RestartPreventExitStatus"] == "2"
    assert service["TimeoutStopSec"] == "20"
    assert service["KillMode"] == "mixed"
    assert service["StateDirectory"] == "exportsync"
    assert service["LoadCredential"] == "api_key:/etc/exportsync/api_key"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ProtectHome"] == "read-only"
    assert service["ReadWritePaths"] == "-/srv/x"  # "-": a missing folder does not fail the start
    assert service["PrivateTmp"] == "yes"
    assert "AF_UNIX" in service["RestrictAddressFamilies"]  # sd_notify needs it
    assert unit(text)["Install"]["WantedBy"] == "multi-user.target"
    assert unit(text)["Unit"]["After"] == "network-online.target"


def test_home_watch_dir_stays_writable_under_protect_home() -> None:
    service = unit(
        render_systemd(
            executable=EXE,
            config_path=CONFIG,
            user_mode=False,
            user="alice",
            watch_dir=Path("/home/alice/Exports"),
            state_dir=Path("/data/exportsync"),
        )
    )["Service"]
    assert service["ProtectHome"] == "read-only"
    assert service["ReadWritePaths"] == "-/home/alice/Exports /data/exportsync"


def test_user_unit_skips_system_only_settings() -> None:
    text = render_systemd(executable=EXE, config_path=CONFIG, user_mode=True, user="ignored")
    parsed = unit(text)
    service = parsed["Service"]
    assert service["Type"] == "notify"
    assert service["WatchdogSec"] == "60"
    for key in ("User", "LoadCredential", "ProtectSystem", "PrivateTmp"):
        assert key not in service
    assert "After" not in parsed["Unit"]
    assert parsed["Install"]["WantedBy"] == "default.target"


def test_unit_quotes_spaces_and_escapes_specifiers() -> None:
    text = render_systemd(
        executable="/opt/my tools/exportsync",
        config_path=Path("/etc/100%/$HOME.toml"),
        user_mode=False,
        user="alice",
        watch_dir=Path("/srv/My Exports"),
    )
    service = unit(text)["Service"]
    assert service["ExecStart"] == '"/opt/my tools/exportsync" run --config /etc/100%%/$$HOME.toml'
    assert service["ReadWritePaths"] == '"-/srv/My Exports"'


def test_a_system_unit_always_names_its_account() -> None:
    with pytest.raises(ValueError, match="account"):
        render_systemd(executable=EXE, config_path=CONFIG, user_mode=False, user=None)
    service = unit(
        render_systemd(
            executable=EXE, config_path=CONFIG, user_mode=False, user="alice", group="staff"
        )
    )["Service"]
    assert (service["User"], service["Group"]) == ("alice", "staff")


def test_plist_parses_and_runs_the_daemon() -> None:
    text = render_launchd(
        executable=EXE, config_path=CONFIG, user_mode=True, log_dir=Path("/Users/a/Library/Logs/x")
    )
    plist = plistlib.loads(text.encode())
    assert plist["Label"] == LAUNCHD_AGENT_LABEL
    assert plist["ProgramArguments"][:4] == [EXE, "run", "--config", str(CONFIG)]
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["ExitTimeOut"] == 20
    assert plist["StandardErrorPath"] == "/Users/a/Library/Logs/x/exportsync.log"
    assert plist["StandardOutPath"] == plist["StandardErrorPath"]
    assert plist["ThrottleInterval"] == 5  # a crash loop restarts at most every 5 s
    assert plist["ProcessType"] == "Background"
    assert plistlib.loads(plistlib.dumps(plist)) == plist  # a valid plist round-trips


def test_a_launch_daemon_runs_as_its_account() -> None:
    text = render_launchd(
        executable=EXE,
        config_path=CONFIG,
        user_mode=False,
        log_dir=Path("/Library/Logs/exportsync"),
        user="alice",
        group="staff",
    )
    plist = plistlib.loads(text.encode())
    assert (plist["UserName"], plist["GroupName"]) == ("alice", "staff")


def test_a_user_agent_logs_into_the_users_log_folder() -> None:
    assert default_log_dir(user_mode=True, env={"HOME": "/Users/alice"}) == Path(
        "/Users/alice/Library/Logs/exportsync"
    )


def test_install_and_uninstall_systemd_under_root(tmp_path: Path) -> None:
    def install_system() -> InstallResult:
        return install(
            "systemd",
            executable=EXE,
            config_path=CONFIG,
            user_mode=False,
            user="alice",
            watch_dir=Path("/srv/x"),
            root=tmp_path,
        )

    result = install_system()
    assert result.path == tmp_path / "etc/systemd/system/exportsync.service"
    assert unit(result.path.read_text())["Service"]["User"] == "alice"
    assert result.next_commands == (
        "systemctl daemon-reload",
        "systemctl enable --now exportsync.service",
    )
    assert any("/etc/exportsync/api_key" in note for note in result.notes)
    assert [p.name for p in result.path.parent.iterdir()] == ["exportsync.service"]  # no temp left
    assert not install_system().changed  # same text again: the file is left alone

    wants = result.path.parent / "multi-user.target.wants"
    wants.mkdir()
    (wants / "exportsync.service").symlink_to(result.path)
    removed = uninstall("systemd", user_mode=False, root=tmp_path)
    assert removed.changed
    assert not result.path.exists()
    assert not (wants / "exportsync.service").is_symlink()
    assert removed.next_commands[-1] == "systemctl daemon-reload"


def test_user_unit_path_follows_xdg_config_home(tmp_path: Path) -> None:
    env = {"HOME": "/home/alice"}
    assert service_path("systemd", user_mode=True, env=env) == Path(
        "/home/alice/.config/systemd/user/exportsync.service"
    )
    env["XDG_CONFIG_HOME"] = "/cfg"
    assert service_path("systemd", user_mode=True, env=env) == Path(
        "/cfg/systemd/user/exportsync.service"
    )
    result = install(
        "systemd", executable=EXE, config_path=CONFIG, user_mode=True, root=tmp_path, env=env
    )
    assert result.path == tmp_path / "cfg/systemd/user/exportsync.service"
    assert result.next_commands[0] == "systemctl --user daemon-reload"


def test_install_launchd_agent(tmp_path: Path) -> None:
    env = {"HOME": "/Users/alice"}
    result = install(
        "launchd", executable=EXE, config_path=CONFIG, user_mode=True, root=tmp_path, env=env
    )
    assert result.path == tmp_path / "Users/alice/Library/LaunchAgents/com.exportsync.agent.plist"
    assert plistlib.loads(result.path.read_bytes())["Label"] == LAUNCHD_AGENT_LABEL
    assert (tmp_path / "Users/alice/Library/Logs/exportsync").is_dir()
    assert result.next_commands == (
        f"launchctl bootstrap gui/{os.getuid()} "
        "/Users/alice/Library/LaunchAgents/com.exportsync.agent.plist",
    )
    gone = uninstall("launchd", user_mode=True, root=tmp_path, env=env)
    assert not result.path.exists()
    assert gone.next_commands == (f"launchctl bootout gui/{os.getuid()}/{LAUNCHD_AGENT_LABEL}",)


def test_system_launch_daemon_path() -> None:
    assert service_path("launchd", user_mode=False) == Path(
        "/Library/LaunchDaemons/com.exportsync.daemon.plist"
    )


# --- the example files in the repository are exactly what the code renders ---------------------


def _body(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("#")]


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        (
            "exportsync.service",
            {
                "executable": EXE,
                "config_path": CONFIG,
                "user_mode": False,
                "user": "exportsync",
                "group": "exportsync",
                "watch_dir": Path("/srv/exports"),
            },
        ),
        (
            "exportsync-user.service",
            {
                "executable": "/home/alice/.local/bin/exportsync",
                "config_path": Path("/home/alice/.config/exportsync/exportsync.toml"),
                "user_mode": True,
                "user": None,
                "state_home": Path("/home/alice/.local/state"),
            },
        ),
    ],
)
def test_example_units_match_rendering(name: str, kwargs: dict[str, object]) -> None:
    example = (REPO / "systemd" / name).read_text(encoding="utf-8")
    assert _body(example) == _body(render_systemd(**kwargs))  # type: ignore[arg-type]


def test_example_plist_matches_rendering() -> None:
    example = plistlib.loads((REPO / "launchd" / "com.exportsync.agent.plist").read_bytes())
    rendered = render_launchd(
        executable=EXE,
        config_path=Path("/Users/alice/Library/Application Support/exportsync/exportsync.toml"),
        user_mode=True,
        log_dir=Path("/Users/alice/Library/Logs/exportsync"),
    )
    assert example == plistlib.loads(rendered.encode())
