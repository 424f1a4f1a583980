"""The rendered units as systemd itself reads them: `systemd-analyze verify` and `security`, the
account a system service runs as, and values that must never turn into directives."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from exportsync import config as config_module
from exportsync.cli import main
from exportsync.service import ServiceError, readable_by, render_systemd, system_account

ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (Debian package: systemd)"
)
# A file that exists: `verify` checks that ExecStart's command does.
EXE = str(Path(sys.executable).absolute())
CONFIG = Path("/etc/exportsync/config.toml")
SYSTEM_EXPOSURE_LIMIT = 2.0


def analyze(tmp_path: Path, text: str, *args: str, user: bool = False) -> str:
    """Run systemd-analyze on `text` saved as exportsync.service; its stdout and stderr."""
    assert ANALYZE is not None
    folder = tmp_path / "unit"
    folder.mkdir(exist_ok=True)
    path = folder / "exportsync.service"
    path.write_text(text, encoding="utf-8")
    runtime = tmp_path / "runtime"  # a user manager needs one, even offline
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_COLORS": "0"}
    scope = ["--user"] if user else []
    done = subprocess.run(
        [ANALYZE, *args, *scope, str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def exposure(report: str) -> float:
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", report)
    assert match, report
    return float(match.group(1))


def system_unit(watch: Path, user: str = "exportsync") -> str:
    return render_systemd(
        executable=EXE,
        config_path=CONFIG,
        user_mode=False,
        user=user,
        group=user,
        watch_dir=watch,
        state_dir=Path("/var/lib/exportsync"),
    )


@needs_analyze
def test_system_unit_verifies_silently_and_scores_low(tmp_path: Path) -> None:
    text = system_unit(Path("/srv/exports"))
    assert analyze(tmp_path, text, "verify") == ""
    score = exposure(analyze(tmp_path, text, "security", "--offline=true"))
    assert score <= SYSTEM_EXPOSURE_LIMIT


@needs_analyze
def test_user_unit_verifies_silently(tmp_path: Path) -> None:
    text = render_systemd(executable=EXE, config_path=CONFIG, user_mode=True, user=None)
    assert analyze(tmp_path, text, "verify", user=True) == ""
    for option in ("SystemCallFilter=@system-service", "MemoryDenyWriteExecute=yes"):
        assert option in text
    # Without namespaces a user unit cannot reach the system unit's score; the seccomp options
    # still take it from UNSAFE (9.4 with none) to MEDIUM.
    assert exposure(analyze(tmp_path, text, "security", "--offline=true", user=True)) <= 7.0


@needs_analyze
def test_awkward_paths_are_quoted_so_systemd_reads_them(tmp_path: Path) -> None:
    """Spaces, quotes, backslashes, % and $ survive as one word; the unit still verifies."""
    awkward = Path('/srv/my "exports" 100%/a\\b $HOME;x')
    text = system_unit(awkward)
    assert analyze(tmp_path, text, "verify") == ""
    [line] = [x for x in text.splitlines() if x.startswith("ReadWritePaths=")]
    assert line.startswith('ReadWritePaths="-/srv/my \\"exports\\" 100%%/a\\\\b $HOME;x" ')


@pytest.mark.parametrize("bad", ["\n", "\r", "\t", "\x00", "\x1b", "\x7f"])
def test_control_characters_are_refused(bad: str) -> None:
    with pytest.raises(ServiceError, match=r"watch\.dir.*control character"):
        system_unit(Path(f"/srv/a{bad}ExecStartPre=/bin/touch /tmp/owned"))


def test_a_newline_in_watch_dir_exits_2_and_prints_no_unit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    watch = tmp_path / "a\nExecStartPre=touch owned"
    watch.mkdir()
    config = tmp_path / "exportsync.toml"
    config.write_text(f'[watch]\ndir = "{str(watch).replace(chr(10), chr(92) + "n")}"\n')
    code = main(["service", "print", "--system", "--run-as", "root", "--config", str(config)])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert "watch.dir" in err
    assert "control character" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="as root, the nobody-owned folder test covers this")
def test_a_system_service_runs_as_the_owner_of_watch_dir(tmp_path: Path) -> None:
    user, group = system_account(None, tmp_path)
    stat = tmp_path.stat()
    assert user in (_name(stat.st_uid), str(stat.st_uid))
    assert group


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a folder to another account")
def test_a_folder_owned_by_nobody_gives_user_nobody(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    watch = tmp_path / "exports"
    watch.mkdir()
    os.chown(watch, 65534, 65534)
    config = tmp_path / "exportsync.toml"
    config.write_text(f'[watch]\ndir = "{watch}"\n[state]\ndir = "/var/lib/exportsync"\n')
    assert main(["service", "print", "--system", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"User={_name(65534)}" in lines


def test_a_root_owned_folder_needs_run_as(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = tmp_path / "exports"
    watch.mkdir()
    real_stat = Path.stat

    def root_owned(self: Path, **kwargs: bool) -> os.stat_result:
        info = real_stat(self, **kwargs)
        if self != watch:
            return info
        return os.stat_result((info.st_mode, info.st_ino, info.st_dev, 1, 0, 0, *info[6:10]))

    monkeypatch.setattr(Path, "stat", root_owned)
    config = tmp_path / "exportsync.toml"
    config.write_text(f'[watch]\ndir = "{watch}"\n[state]\ndir = "/var/lib/exportsync"\n')
    argv = ["service", "print", "--system", "--config", str(config)]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "owned by root" in err
    assert "--run-as" in err
    assert main([*argv, "--run-as", "root"]) == 0
    assert "User=root" in capsys.readouterr().out.splitlines()


def test_run_as_an_unknown_account_or_with_user_scope_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "exportsync.toml"
    config.write_text(f'[watch]\ndir = "{tmp_path}"\n')
    base = ["service", "print", "--config", str(config)]
    assert main([*base, "--system", "--run-as", "no-such-account-here"]) == 2
    assert "no account" in capsys.readouterr().err
    assert main([*base, "--system", "--run-as", "a\nb"]) == 2
    assert main([*base, "--user", "--run-as", "root"]) == 2
    assert "--system" in capsys.readouterr().err


def _name(uid: int) -> str:
    return pwd.getpwuid(uid).pw_name


def test_only_a_named_state_dir_is_made_writable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without state.dir (a config in /etc/exportsync) the service keeps to StateDirectory=; a
    guessed path would fail the start under ProtectHome= when it does not exist."""
    monkeypatch.setattr(config_module, "SYSTEM_CONFIG_DIR", tmp_path)
    config = tmp_path / "exportsync.toml"
    config.write_text(f'[watch]\ndir = "{tmp_path}"\n')
    argv = ["service", "print", "--system", "--run-as", "root", "--config", str(config)]
    assert main(argv) == 0
    [line] = [x for x in capsys.readouterr().out.splitlines() if x.startswith("ReadWritePaths=")]
    assert line == f"ReadWritePaths=-{tmp_path}"
    config.write_text(f'[watch]\ndir = "{tmp_path}"\n[state]\ndir = "/data/exportsync"\n')
    assert main(argv) == 0
    assert f"ReadWritePaths=-{tmp_path} /data/exportsync" in capsys.readouterr().out.splitlines()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand files to other accounts")
def test_readable_by_goes_by_the_mode_bits_alone(tmp_path: Path) -> None:
    """The system unit has no capabilities: root reads a 0600 file of nobody's no better."""
    secret = tmp_path / "config.toml"
    secret.write_text("")
    os.chown(secret, 65534, 65534)
    secret.chmod(0o600)
    nobody = _name(65534)
    assert readable_by(secret, nobody)
    assert not readable_by(secret, "root")
    secret.chmod(0o644)
    assert readable_by(secret, "root")
    assert not readable_by(tmp_path / "missing", nobody)
