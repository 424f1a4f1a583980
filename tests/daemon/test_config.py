"""Config loading: precedence, API key sources, validation naming the key, the example file."""

from __future__ import annotations

import os
import re
import tomllib
from datetime import time
from pathlib import Path

import pytest

from exportsync.config import (
    KNOWN_KEYS,
    ApiConfig,
    Config,
    LogConfig,
    QuotaConfig,
    Secret,
    WatchConfig,
    load_config,
)
from exportsync.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "exportsync.example.toml"
KEY = "test-key-0123456789abcdef"
URL = "https://abc123.execute-api.eu-central-1.amazonaws.com/prod"


def write(tmp_path: Path, text: str, name: str = "exportsync.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.fixture
def minimal(tmp_path: Path) -> Path:
    (tmp_path / "export").mkdir()
    return write(
        tmp_path,
        f'[watch]\ndir = "{tmp_path / "export"}"\n[api]\nurl = "{URL}"\napi_key = "{KEY}"\n',
    )


def error_for(path: Path | None, **kwargs: object) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, **kwargs)  # type: ignore[arg-type]
    return info.value


# --- defaults and precedence -----------------------------------------------------------------


def test_minimal_file_gets_contract_defaults(minimal: Path, tmp_path: Path) -> None:
    cfg = load_config(minimal, env={"HOME": str(tmp_path)})
    assert cfg.path == minimal
    assert cfg.watch == WatchConfig(dir=tmp_path / "export")
    assert cfg.api == ApiConfig(url=URL, api_key=Secret(KEY), user_id=None)
    assert cfg.quota == QuotaConfig()
    assert "~$*" in cfg.watch.ignore_globs  # office owner-lock files (CONTRACT §3)
    assert cfg.quota.reset_utc == time(0, 0)
    assert cfg.log == LogConfig(format=None, level="info")
    assert cfg.warnings == ()


def test_precedence_file_then_env_then_flags(minimal: Path) -> None:
    text = minimal.read_text() + '[log]\nlevel = "warning"\nformat = "console"\n'
    minimal.write_text(text)
    env = {"EXPORTSYNC_LOG_LEVEL": "debug", "EXPORTSYNC_QUOTA_BURST": "3"}
    cfg = load_config(minimal, env=env, overrides={"log.level": "error", "quota.burst": None})
    assert cfg.log.level == "error"  # flag beats env beats file
    assert cfg.log.format == "console"  # file beats default
    assert cfg.quota.burst == 3  # env beats default; a None flag means "not given"
    assert {"log.level", "quota.burst", "watch.dir"} <= cfg.explicit
    assert "state.dir" not in cfg.explicit


def test_no_file_uses_env_config_then_defaults(minimal: Path, tmp_path: Path) -> None:
    cfg = load_config(env={"EXPORTSYNC_CONFIG": str(minimal)})
    assert cfg.path == minimal
    bare = load_config(
        env={"HOME": str(tmp_path)}, overrides={"watch.dir": tmp_path}, require_api=False
    )
    assert bare.path is None
    assert bare.api.url == ""
    assert bare.api.api_key is None


def test_env_values_are_parsed_from_text(minimal: Path) -> None:
    env = {
        "EXPORTSYNC_WATCH_RECURSIVE": "yes",
        "EXPORTSYNC_WATCH_POLLING": "1",
        "EXPORTSYNC_WATCH_CSV_GLOBS": "*.csv, *.tsv",
        "EXPORTSYNC_API_TIMEOUT_SECONDS": "2.5",
        "EXPORTSYNC_QUOTA_RESET_UTC": "07:30",
    }
    cfg = load_config(minimal, env=env)
    assert cfg.watch.recursive is True
    assert cfg.watch.use_polling is True
    assert cfg.watch.csv_globs == ("*.csv", "*.tsv")
    assert cfg.api.timeout_seconds == 2.5
    assert cfg.quota.reset_utc == time(7, 30)


def test_bad_env_value_names_key_and_variable(minimal: Path) -> None:
    err = error_for(minimal, env={"EXPORTSYNC_QUOTA_BURST": "many"})
    assert err.key == "quota.burst"
    assert "EXPORTSYNC_QUOTA_BURST" in str(err)


def test_unknown_env_variable_is_a_warning(minimal: Path) -> None:
    cfg = load_config(minimal, env={"EXPORTSYNC_WATCH_DIRR": "/x"})
    assert any("EXPORTSYNC_WATCH_DIRR" in w for w in cfg.warnings)


def test_paths_expand_home_vars_and_relative_to_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[watch]\ndir = "~/exp"\n[state]\ndir = "$DATA/state"\n'
        f'[api]\nurl = "{URL}"\napi_key_file = "key.txt"\n',
    )
    (tmp_path / "key.txt").write_text(KEY + "\n")
    (tmp_path / "key.txt").chmod(0o600)
    cfg = load_config(path, env={"HOME": "/home/someone", "DATA": "/var/data"})
    assert cfg.watch.dir == Path("/home/someone/exp")
    assert cfg.state.dir == Path("/var/data/state")
    assert cfg.api.api_key == Secret(KEY)  # relative to the file, trailing newline stripped


def test_unset_variable_in_path_is_an_error(minimal: Path) -> None:
    err = error_for(minimal, env={}, overrides={"state.dir": "$NOPE/x"})
    assert err.key == "state.dir"
    assert "$NOPE" in err.message


def test_state_dir_sources(minimal: Path, tmp_path: Path) -> None:
    assert load_config(minimal, env={"STATE_DIRECTORY": "/var/lib/exportsync"}).state.dir == Path(
        "/var/lib/exportsync"
    )
    explicit = load_config(
        minimal, env={"STATE_DIRECTORY": "/var/lib/x"}, overrides={"state.dir": tmp_path}
    )
    assert explicit.state.dir == tmp_path
    assert load_config(minimal, env={}).state.dir.name == "exportsync"


# --- API key ---------------------------------------------------------------------------------


def test_env_key_overrides_file_key(minimal: Path) -> None:
    cfg = load_config(minimal, env={"EXPORTSYNC_API_KEY": "from-env-key-123"})
    assert cfg.api.api_key == Secret("from-env-key-123")


def test_systemd_credential_is_the_fallback(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "api_key").write_text(KEY + "\r\n")
    cfg = load_config(
        overrides={"watch.dir": tmp_path, "api.url": URL},
        env={"CREDENTIALS_DIRECTORY": str(creds)},
    )
    assert cfg.api.api_key is not None
    assert cfg.api.api_key.reveal() == KEY


def test_key_and_key_file_together_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, f'[api]\nurl = "{URL}"\napi_key = "{KEY}"\napi_key_file = "k"\n')
    assert error_for(path, env={}, overrides={"watch.dir": tmp_path}).key == "api.api_key"


def test_missing_key_is_an_error_only_when_required(tmp_path: Path) -> None:
    over = {"watch.dir": tmp_path, "api.url": URL}
    assert error_for(None, env={}, overrides=over).key == "api.api_key"
    assert load_config(env={}, overrides=over, require_api=False).api.api_key is None


def test_unreadable_key_file_is_a_warning_when_not_required(tmp_path: Path) -> None:
    over = {"watch.dir": tmp_path, "api.api_key_file": tmp_path / "missing"}
    assert error_for(None, env={}, overrides={**over, "api.url": URL}).key == "api.api_key_file"
    cfg = load_config(env={}, overrides=over, require_api=False, require_watch=True)
    assert cfg.api.api_key is None
    assert any("api.api_key_file" in w for w in cfg.warnings)


@pytest.mark.parametrize("bad", ["", "two words", "line\nbreak"])
def test_malformed_key_is_refused_without_echoing_it(tmp_path: Path, bad: str) -> None:
    err = error_for(
        None,
        env={"EXPORTSYNC_API_KEY": bad} if bad else {},
        overrides={"watch.dir": tmp_path, "api.url": URL, "api.api_key": bad or None},
    )
    assert err.key == "api.api_key"
    if bad:
        assert bad not in str(err)


def test_readable_file_holding_key_warns(minimal: Path) -> None:
    minimal.chmod(0o644)
    cfg = load_config(minimal, env={})
    assert any("chmod 600" in w for w in cfg.warnings)
    assert KEY not in " ".join(cfg.warnings)


def test_secret_never_shows_itself(minimal: Path) -> None:
    cfg = load_config(minimal, env={})
    for text in (repr(cfg), str(cfg), f"{cfg.api}", f"{cfg.api.api_key}"):
        assert KEY not in text
    assert repr(Secret(KEY)) == str(Secret(KEY)) == "Secret('***')"
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")


# --- validation: every error names its key ---------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[wacth]\n", "wacth"),
        ("[watch]\nrecursve = true\n", "watch.recursve"),
        ("[api]\nurl = 5\n", "api.url"),
        ("[watch]\nrecursive = 'yes'\n", "watch.recursive"),
        ("[watch]\nafter_upload = 'archive'\n", "watch.after_upload"),
        ("[watch]\ncsv_globs = '*.csv'\n", "watch.csv_globs"),
        ("[watch]\ncsv_globs = [1]\n", "watch.csv_globs"),
        ("[watch]\nignore_globs = ['sub/*.tmp']\n", "watch.ignore_globs"),
        ("[watch]\nsettle_seconds = 0\n", "watch.settle_seconds"),
        ("[api]\nurl = 'ftp://host/x'\n", "api.url"),
        ("[api]\nurl = 'https:///nohost'\n", "api.url"),
        ("[api]\nurl = 'http://api.example.com/prod'\n", "api.url"),
        ("[api]\nurl = 'https://user:pw@api.example.com/'\n", "api.url"),
        ("[api]\ntimeout_seconds = 0\n", "api.timeout_seconds"),
        ("[api]\ntimeout_seconds = '30'\n", "api.timeout_seconds"),
        ("[api]\ninline_max_bytes = 6000000\n", "api.inline_max_bytes"),
        ("[api]\nbatch_max_files = 1001\n", "api.batch_max_files"),
        ("[api]\nmultipart_threshold_bytes = 1000\n", "api.multipart_threshold_bytes"),
        ("[quota]\nquiet_seconds = -1\n", "quota.quiet_seconds"),
        ("[api]\nbatch_linger_seconds = -1\n", "api.batch_linger_seconds"),
        ("[quota]\nprompt_requests = -1\n", "quota.prompt_requests"),
        ("[quota]\nreserve_requests = -1\n", "quota.reserve_requests"),
        ("[quota]\nlast_call_seconds = 50000\n", "quota.last_call_seconds"),
        ("[quota]\nrequests_per_second = 0\n", "quota.requests_per_second"),
        ("[quota]\nburst = 0\n", "quota.burst"),
        ("[quota]\nburst = true\n", "quota.burst"),
        ("[quota]\ndaily_requests = -1\n", "quota.daily_requests"),
        ("[quota]\nreset_utc = '24:00'\n", "quota.reset_utc"),
        ("[quota]\nreset_utc = '7am'\n", "quota.reset_utc"),
        ("[log]\nlevel = 'verbose'\n", "log.level"),
        ("[log]\nformat = 'xml'\n", "log.format"),
        ("watch = 3\n", "watch"),
    ],
)
def test_invalid_values_name_the_key(tmp_path: Path, toml: str, key: str) -> None:
    path = write(tmp_path, toml)
    err = error_for(path, env={}, require_api=False)
    assert err.key == key


def test_typo_gets_a_suggestion(tmp_path: Path) -> None:
    err = error_for(write(tmp_path, "[watch]\nrecursve = true\n"), env={}, require_api=False)
    assert "recursive" in err.message


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/", "http://127.1.2.3/x", "http://[::1]:9/", "http://localhost/"]
)
def test_plain_http_is_allowed_for_loopback(tmp_path: Path, url: str) -> None:
    cfg = load_config(
        env={"EXPORTSYNC_API_KEY": KEY}, overrides={"watch.dir": tmp_path, "api.url": url}
    )
    assert cfg.api.url == url.rstrip("/")


def test_invalid_toml_reports_position(tmp_path: Path) -> None:
    err = error_for(write(tmp_path, "[watch]\ndir = \n"), env={})
    assert err.key == "config"
    assert "line 2" in err.message


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    assert error_for(tmp_path / "nope.toml", env={}).key == "config"
    assert error_for(None, env={"EXPORTSYNC_CONFIG": str(tmp_path / "x")}).key == "config"


def test_watch_dir_required_with_helpful_message(tmp_path: Path) -> None:
    err = error_for(None, env={"EXPORTSYNC_API_KEY": KEY}, overrides={"api.url": URL})
    assert err.key == "watch.dir"
    assert "EXPORTSYNC_WATCH_DIR" in err.message


def test_watch_dir_must_be_a_directory(tmp_path: Path) -> None:
    file = tmp_path / "f"
    file.write_text("")
    err = error_for(None, env={}, overrides={"watch.dir": file}, require_api=False)
    assert err.key == "watch.dir"


def test_unknown_override_is_an_error(minimal: Path) -> None:
    assert error_for(minimal, env={}, overrides={"watch.dirr": "/x"}).key == "watch.dirr"


def test_toml_local_time_accepted_for_reset(minimal: Path) -> None:
    minimal.write_text(minimal.read_text() + "[quota]\nreset_utc = 06:15:00\n")
    assert load_config(minimal, env={}).quota.reset_utc == time(6, 15)


# --- the example file can never drift from the code ------------------------------------------


def test_example_config_loads_with_documented_defaults(tmp_path: Path) -> None:
    cfg = load_config(
        EXAMPLE,
        env={"EXPORTSYNC_API_KEY": KEY, "HOME": str(tmp_path)},
        overrides={"watch.dir": tmp_path},
    )
    assert isinstance(cfg, Config)
    assert cfg.watch == WatchConfig(dir=tmp_path)
    assert cfg.quota == QuotaConfig()
    assert cfg.api.timeout_seconds == ApiConfig(url="", api_key=None, user_id=None).timeout_seconds
    assert cfg.api.inline_max_bytes == 4_000_000
    assert cfg.api.batch_max_files == 1000
    assert cfg.log == LogConfig()


def test_example_config_documents_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    parts = re.split(r"^\[(\w+)\]$", text, flags=re.MULTILINE)
    documented = {
        f"{section}.{name}"
        for section, body in zip(parts[1::2], parts[2::2], strict=True)
        # a key set (`key = `) or shown commented out (`# key = `) in its own section
        for name in re.findall(r"^#? ?(\w+) = ", body, flags=re.MULTILINE)
    }
    assert documented == KNOWN_KEYS
    tomllib.loads(text)


def test_the_old_linger_key_still_sets_the_quiet_window(tmp_path: Path) -> None:
    path = tmp_path / "old.toml"
    path.write_text("[api]\nbatch_linger_seconds = 5.0\n")
    cfg = load_config(path, env={}, require_api=False, require_watch=False)
    assert cfg.quota.pacing.quiet_seconds == 5.0
    assert any("quota.quiet_seconds" in w for w in cfg.warnings)


def test_keep_delivered_days_defaults_to_30_and_is_checked(minimal: Path, tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    assert load_config(minimal, env=env).state.keep_delivered_days == 30
    assert (
        load_config(
            minimal, env={**env, "EXPORTSYNC_STATE_KEEP_DELIVERED_DAYS": "0"}
        ).state.keep_delivered_days
        == 0
    )
    error = error_for(minimal, env=env, overrides={"state.keep_delivered_days": -1})
    assert error.key == "state.keep_delivered_days"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand the key file to another owner")
def test_a_key_file_shared_with_the_services_group_is_not_a_warning(tmp_path: Path) -> None:
    """A system unit that rotates by `systemctl reload` reads /etc/exportsync/api_key through its
    group (root-owned, 640): that is the point, not a mistake. Readable by others, or a file of
    our own open to its group, still warns."""
    key = tmp_path / "api_key"
    key.write_text("k-shared-with-the-group\n")
    overrides = {"watch.dir": tmp_path, "api.url": URL, "api.api_key_file": key}
    os.chown(key, 65534, os.getgid())  # another owner; our group
    key.chmod(0o640)
    assert not load_config(None, env={}, overrides=overrides).warnings
    key.chmod(0o644)
    assert any("chmod" in w for w in load_config(None, env={}, overrides=overrides).warnings)
    os.chown(key, os.getuid(), os.getgid())
    key.chmod(0o640)
    assert any("chmod" in w for w in load_config(None, env={}, overrides=overrides).warnings)


def test_learn_days_defaults_to_14_is_checked_and_never_outlives_the_spools_rows(
    minimal: Path, tmp_path: Path
) -> None:
    env = {"HOME": str(tmp_path)}
    assert load_config(minimal, env=env).quota.pacing.learn_days == 14
    off = load_config(minimal, env={**env, "EXPORTSYNC_QUOTA_LEARN_DAYS": "0"})
    assert off.quota.pacing.learn_days == 0
    # Delivered rows pruned after 7 days: older days would look empty, so only 7 are learned.
    short = load_config(minimal, env={**env, "EXPORTSYNC_STATE_KEEP_DELIVERED_DAYS": "7"})
    assert short.quota.pacing.learn_days == 7
    forever = load_config(minimal, env={**env, "EXPORTSYNC_STATE_KEEP_DELIVERED_DAYS": "0"})
    assert forever.quota.pacing.learn_days == 14
    error = error_for(minimal, env=env, overrides={"quota.learn_days": -1})
    assert error.key == "quota.learn_days"
