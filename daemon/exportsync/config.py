"""The daemon's configuration: defaults, then the TOML file, then the environment, then CLI flags.

Everything is validated once, here; every problem is a `ConfigError` naming the dotted key
(``watch.dir``, ``api.url``...). Keys and sections are the ones README.md lists, all documented in
``config/exportsync.example.toml``. Environment variables are
``EXPORTSYNC_<SECTION>_<KEY>`` (``EXPORTSYNC_WATCH_DIR``, ``EXPORTSYNC_LOG_LEVEL``...), except
the API key, which is ``EXPORTSYNC_API_KEY``. Relative paths in the file are relative to the
file's folder.
"""

from __future__ import annotations

import difflib
import hmac
import ipaddress
import math
import os
import re
import stat
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import time
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import platformdirs

from exportsync.batches import DEFAULT_MULTIPART_THRESHOLD
from exportsync.configpath import ENV_CONFIG
from exportsync.errors import ConfigError
from exportsync.logs import register_secret
from exportsync.matcher import DEFAULT_IGNORE_GLOBS
from exportsync.pacing import Pacing
from exportsync_wire import limits

__all__ = [
    "ENV_API_KEY",
    "ENV_CONFIG",
    "KNOWN_KEYS",
    "SYSTEM_CONFIG_DIR",
    "SYSTEM_STATE_DIR",
    "ApiConfig",
    "Config",
    "LogConfig",
    "MetricsConfig",
    "QuotaConfig",
    "Secret",
    "StateConfig",
    "WatchConfig",
    "default_state_dir",
    "env_var_for",
    "load_config",
    "user_state_home",
]

ENV_API_KEY = "EXPORTSYNC_API_KEY"
_ENV_PREFIX = "EXPORTSYNC_"
# A config kept here is the machine's (a system service's): its spool defaults to SYSTEM_STATE_DIR,
# for the service and for every command run in a shell with that config (`default_state_dir`).
SYSTEM_CONFIG_DIR = Path("/etc/exportsync")
SYSTEM_STATE_DIR = (
    Path("/Library/Application Support/exportsync")
    if sys.platform == "darwin"
    else Path("/var/lib/exportsync")  # systemd's StateDirectory=exportsync of a system unit
)
_CREDENTIAL_NAME = "api_key"
_INLINE_CEILING = limits.INLINE_CEILING_BYTES
_BATCH_CEILING = limits.MAX_BATCH_ENTRIES

AfterUpload = Literal["keep", "move", "delete"]
LogFormat = Literal["json", "console"]
_LOG_LEVELS = ("debug", "info", "warning", "error")


class Secret:
    """A string that never shows itself in a repr, str, f-string or log; `.reveal()` uses it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class WatchConfig:
    dir: Path
    recursive: bool = False
    csv_globs: tuple[str, ...] = ("*.csv",)
    session_globs: tuple[str, ...] = ("*.session.json",)
    ignore_globs: tuple[str, ...] = DEFAULT_IGNORE_GLOBS
    after_upload: AfterUpload = "keep"
    settle_seconds: float = 2.0
    use_polling: bool = False


@dataclass(frozen=True)
class ApiConfig:
    url: str
    api_key: Secret | None
    user_id: str | None
    timeout_seconds: float = 30.0
    inline_max_bytes: int = limits.INLINE_BODY_BYTES
    batch_max_files: int = limits.MAX_BATCH_ENTRIES
    multipart_threshold_bytes: int = DEFAULT_MULTIPART_THRESHOLD


@dataclass(frozen=True)
class QuotaConfig:
    requests_per_second: float = 1.0
    burst: int = 1
    daily_requests: int = 10
    reset_utc: time = time(0, 0)
    margin_seconds: float = 0.25
    pacing: Pacing = field(default_factory=Pacing)


@dataclass(frozen=True)
class StateConfig:
    dir: Path
    # Delivered items older than this are pruned from the spool (0: kept forever).
    keep_delivered_days: float = 30.0


@dataclass(frozen=True)
class LogConfig:
    format: LogFormat | None = None
    level: str = "info"


@dataclass(frozen=True)
class MetricsConfig:
    """Where /metrics listens; None: no endpoint (the default)."""

    host: str | None = None
    port: int = 9464


@dataclass(frozen=True)
class Config:
    watch: WatchConfig
    api: ApiConfig
    quota: QuotaConfig
    state: StateConfig
    log: LogConfig
    path: Path | None
    metrics: MetricsConfig = field(default=MetricsConfig())
    warnings: tuple[str, ...] = field(default=())
    # Dotted keys set by the file, the environment or a flag (not defaulted), e.g. to tell an
    # explicit state.dir (needs ReadWritePaths= in the unit) from the platform default.
    explicit: frozenset[str] = field(default=frozenset())


# --- schema: every key, its kind. Kinds name the parser used in _coerce. -------------------------

_SCHEMA: dict[str, dict[str, str]] = {
    "watch": {
        "dir": "path",
        "recursive": "bool",
        "csv_globs": "globs",
        "session_globs": "globs",
        "ignore_globs": "globs",
        "after_upload": "after_upload",
        "settle_seconds": "float",
        "polling": "bool",
    },
    "api": {
        "url": "str",
        "api_key": "str",
        "api_key_file": "path",
        "user_id": "str",
        "timeout_seconds": "float",
        "inline_max_bytes": "int",
        "batch_max_files": "int",
        "multipart_threshold_bytes": "int",
        # Replaced by quota.quiet_seconds; still read (with a warning) so old files keep working.
        "batch_linger_seconds": "float",
    },
    "quota": {
        "requests_per_second": "float",
        "burst": "int",
        "daily_requests": "int",
        "reset_utc": "time",
        "margin_seconds": "float",
        "quiet_seconds": "float",
        "prompt_requests": "int",
        "reserve_requests": "int",
        "last_call_seconds": "float",
        "learn_days": "int",
    },
    "state": {"dir": "path", "keep_delivered_days": "float"},
    "log": {"format": "log_format", "level": "log_level"},
    "metrics": {"listen": "str"},
}


KNOWN_KEYS: frozenset[str] = frozenset(f"{s}.{k}" for s, keys in _SCHEMA.items() for k in keys)
"""Every dotted key the loader accepts (file, environment or flag)."""


def env_var_for(key: str) -> str:
    """The environment variable for a dotted key: ``watch.dir`` -> ``EXPORTSYNC_WATCH_DIR``."""
    if key == "api.api_key":
        return ENV_API_KEY
    return _ENV_PREFIX + key.replace(".", "_").upper()


@dataclass(frozen=True)
class _Value:
    """One raw setting and where it came from (the source decides how strictly it is typed)."""

    raw: object
    source: str  # "file", "env:NAME" or "flag"
    base: Path | None = None  # folder that relative paths are resolved against


# --- public entry point ----------------------------------------------------------------------


def load_config(
    path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
    require_api: bool = True,
    require_watch: bool | None = None,
) -> Config:
    """Build the validated Config; raise ConfigError naming the first bad key.

    `require_api` demands api.url and an API key, and (unless `require_watch` says otherwise)
    watch.dir. `require_watch=True, require_api=False` suits `service install`, where the key
    arrives later through a systemd credential.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    need_watch = require_api if require_watch is None else require_watch
    warnings: list[str] = []

    config_path = _locate(path, environ)
    layers: dict[str, _Value] = {}
    if config_path is not None:
        for key, raw in _read_file(config_path).items():
            layers[key] = _Value(raw, "file", config_path.parent)
        _check_file_mode(config_path, layers, warnings)
    for key, value in _from_env(environ, warnings).items():
        layers[key] = value
    for key, raw in (overrides or {}).items():
        _check_known(key)
        if raw is not None:
            layers[key] = _Value(raw, "flag")

    values = {key: _coerce(key, value, environ) for key, value in layers.items()}
    watch = _build_watch(values, need_watch, environ, warnings)
    api = _build_api(values, layers, environ, require_api, warnings)
    return Config(
        watch=watch,
        api=api,
        quota=_build_quota(values),
        state=_build_state(values, environ, config_path),
        log=LogConfig(
            format=cast("LogFormat | None", values.get("log.format")),
            level=cast(str, values.get("log.level", _default(LogConfig, "level"))),
        ),
        path=config_path,
        metrics=_build_metrics(values),
        warnings=tuple(warnings),
        explicit=frozenset(layers),
    )


def _build_state(
    values: Mapping[str, object], environ: Mapping[str, str], config_path: Path | None
) -> StateConfig:
    directory = _state_dir(values, environ, config_path)
    keep = cast(
        float, values.get("state.keep_delivered_days", StateConfig(directory).keep_delivered_days)
    )
    if not 0 <= keep <= 36500:  # a hundred years
        raise ConfigError("state.keep_delivered_days", "must be from 0 (keep forever) to 36500")
    return StateConfig(dir=directory, keep_delivered_days=keep)


# --- sources ---------------------------------------------------------------------------------


def _locate(path: Path | None, environ: Mapping[str, str]) -> Path | None:
    if path is None:
        named = environ.get(ENV_CONFIG, "").strip()
        if not named:
            return None
        path = Path(named)
    return _expand_path(str(path), environ, "config", None)


def _read_file(path: Path) -> dict[str, object]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError("config", f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError("config", f"{path} is not UTF-8 (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        # The message carries the position, e.g. "Expected '=' ... (at line 3, column 7)".
        raise ConfigError("config", f"{path} is not valid TOML: {exc}") from None
    flat: dict[str, object] = {}
    for section, table in document.items():
        if section not in _SCHEMA:
            raise ConfigError(section, f"unknown section{_suggest(section, _SCHEMA)}")
        if not isinstance(table, dict):
            raise ConfigError(section, "must be a table, e.g. [" + section + "]")
        for name, raw in table.items():
            key = f"{section}.{name}"
            _check_known(key)
            flat[key] = raw
    return flat


def _from_env(environ: Mapping[str, str], warnings: list[str]) -> dict[str, _Value]:
    known = {env_var_for(f"{s}.{k}"): f"{s}.{k}" for s, keys in _SCHEMA.items() for k in keys}
    found: dict[str, _Value] = {}
    for name, raw in environ.items():
        if not name.startswith(_ENV_PREFIX) or name == ENV_CONFIG:
            continue
        key = known.get(name)
        if key is None:
            warnings.append(f"ignoring unknown environment variable {name}")
        elif raw != "":
            found[key] = _Value(raw, f"env:{name}")
    return found


def _check_known(key: str) -> None:
    section, _, name = key.partition(".")
    if section not in _SCHEMA:
        raise ConfigError(key, f"unknown section{_suggest(section, _SCHEMA)}")
    if name not in _SCHEMA[section]:
        raise ConfigError(key, f"unknown key{_suggest(name, _SCHEMA[section])}")


def _suggest(word: str, choices: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_file_mode(path: Path, layers: Mapping[str, _Value], warnings: list[str]) -> None:
    held = layers.get("api.api_key")
    if held is None or held.source != "file":
        return
    mode = path.stat().st_mode
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        warnings.append(
            f"{path} holds api.api_key and is readable by group or others "
            f"(mode {stat.S_IMODE(mode):o}); chmod 600 it or use api.api_key_file"
        )


# --- coercion: one parser per kind -----------------------------------------------------------


def _coerce(key: str, value: _Value, environ: Mapping[str, str]) -> object:
    section, _, name = key.partition(".")
    kind = _SCHEMA[section][name]
    textual = value.source != "file" and isinstance(value.raw, str)
    where = "" if value.source in ("file", "flag") else f" (from {value.source[4:]})"
    try:
        if kind == "path":
            return _as_path(key, value, environ)
        return _PARSERS[kind](value.raw, textual)
    except ConfigError as exc:
        raise ConfigError(key, exc.message + where) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(key, f"{exc}{where}") from None


def _as_path(key: str, value: _Value, environ: Mapping[str, str]) -> Path:
    if isinstance(value.raw, Path):
        return _expand_path(str(value.raw), environ, key, value.base)
    if not isinstance(value.raw, str) or not value.raw.strip():
        raise ConfigError(key, "must be a non-empty path string")
    return _expand_path(value.raw, environ, key, value.base)


_VAR = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def _expand_path(text: str, environ: Mapping[str, str], key: str, base: Path | None) -> Path:
    """Expand ``$VAR``/``${VAR}`` (from `environ`, unset is an error) and ``~``; make absolute."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in environ:
            raise ConfigError(key, f"${name} is not set")
        return environ[name]

    expanded = _VAR.sub(sub, text)
    if expanded == "~" or expanded.startswith("~/"):
        home = environ.get("HOME") or str(Path.home())
        expanded = home + expanded[1:]
    path = Path(expanded).expanduser()  # ~user
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    return path


def _as_bool(raw: object, textual: bool) -> bool:
    if isinstance(raw, bool):
        return raw
    if textual and isinstance(raw, str):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
    raise ConfigError("", "must be true or false")


def _as_str(raw: object, textual: bool) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError("", "must be a non-empty string")
    return raw.strip()


def _as_float(raw: object, textual: bool) -> float:
    if textual and isinstance(raw, str):
        try:
            raw = float(raw)
        except ValueError:
            raise ConfigError("", "must be a number") from None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise ConfigError("", "must be a finite number")
    return float(raw)


def _as_int(raw: object, textual: bool) -> int:
    if textual and isinstance(raw, str):
        try:
            raw = int(raw)
        except ValueError:
            raise ConfigError("", "must be a whole number") from None
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ConfigError("", "must be a whole number")
    return raw


def _as_globs(raw: object, textual: bool) -> tuple[str, ...]:
    if textual and isinstance(raw, str):
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(raw, list | tuple):
        raise ConfigError("", "must be a list of glob strings")
    globs: list[str] = []
    for item in raw:
        if not isinstance(item, str) or not item:
            raise ConfigError("", "must be a list of non-empty strings")
        if "/" in item or "\\" in item:
            raise ConfigError("", f"{item!r}: globs match file names, not paths")
        globs.append(item)
    return tuple(globs)


def _as_time(raw: object, textual: bool) -> time:
    if isinstance(raw, time):  # TOML local time, e.g. reset_utc = 00:00:00
        if raw.tzinfo is not None:
            raise ConfigError("", "must be a UTC wall time without offset")
        return raw
    if isinstance(raw, str):
        match = re.fullmatch(r"(\d{1,2}):(\d{2})", raw.strip())
        if match and int(match[1]) < 24 and int(match[2]) < 60:
            return time(int(match[1]), int(match[2]))
    raise ConfigError("", 'must be "HH:MM" (UTC, 24-hour)')


def _one_of(*choices: str) -> Callable[[object, bool], str]:
    def parse(raw: object, textual: bool) -> str:
        if isinstance(raw, str) and raw.strip().lower() in choices:
            return raw.strip().lower()
        raise ConfigError("", "must be one of " + ", ".join(choices))

    return parse


_PARSERS: dict[str, Callable[[object, bool], object]] = {
    "bool": _as_bool,
    "str": _as_str,
    "float": _as_float,
    "int": _as_int,
    "globs": _as_globs,
    "time": _as_time,
    "after_upload": _one_of("keep", "move", "delete"),
    "log_format": _one_of("json", "console"),
    "log_level": _one_of(*_LOG_LEVELS),
}


# --- sections --------------------------------------------------------------------------------


def _build_watch(
    values: Mapping[str, object], required: bool, environ: Mapping[str, str], warnings: list[str]
) -> WatchConfig:
    directory = cast("Path | None", values.get("watch.dir"))
    if directory is None:
        if required:
            raise ConfigError(
                "watch.dir",
                'is required: the export folder, as dir = "..." under [watch] in the config '
                f"file (or {env_var_for('watch.dir')}); 'exportsync setup' writes a config",
            )
        # Only a placeholder: callers that do not require the watch folder never use it.
        directory = _expand_path("~/Exports", environ, "watch.dir", None)
    elif directory.exists() and not directory.is_dir():
        raise ConfigError("watch.dir", f"{directory} is not a directory")
    elif required and not directory.exists():
        warnings.append(
            f"watch.dir {directory} does not exist yet (the daemon waits for it to appear)"
        )
    settle = cast(
        float, values.get("watch.settle_seconds", _default(WatchConfig, "settle_seconds"))
    )
    if not 0 < settle <= 3600:
        raise ConfigError("watch.settle_seconds", "must be > 0 and at most 3600")
    defaults = WatchConfig(dir=directory)
    return WatchConfig(
        dir=directory,
        recursive=cast(bool, values.get("watch.recursive", defaults.recursive)),
        csv_globs=cast("tuple[str, ...]", values.get("watch.csv_globs", defaults.csv_globs)),
        session_globs=cast(
            "tuple[str, ...]", values.get("watch.session_globs", defaults.session_globs)
        ),
        ignore_globs=cast(
            "tuple[str, ...]", values.get("watch.ignore_globs", defaults.ignore_globs)
        ),
        after_upload=cast(AfterUpload, values.get("watch.after_upload", defaults.after_upload)),
        settle_seconds=settle,
        use_polling=cast(bool, values.get("watch.polling", defaults.use_polling)),
    )


def _build_api(
    values: Mapping[str, object],
    layers: Mapping[str, _Value],
    environ: Mapping[str, str],
    required: bool,
    warnings: list[str],
) -> ApiConfig:
    url = cast("str | None", values.get("api.url"))
    if url is not None:
        url = _check_url(url)
    elif required:
        raise ConfigError("api.url", "is required: the API's base URL, e.g. https://…/prod")
    key = _api_key(values, layers, environ, required, warnings)
    if key is None and required:
        raise ConfigError(
            "api.api_key",
            f"no API key: set api.api_key_file (or api.api_key) or {ENV_API_KEY}, "
            "or pass it as the systemd credential 'api_key'",
        )
    timeout = cast(float, values.get("api.timeout_seconds", _default(ApiConfig, "timeout_seconds")))
    if timeout <= 0:
        raise ConfigError("api.timeout_seconds", "must be > 0")
    inline = cast(int, values.get("api.inline_max_bytes", _default(ApiConfig, "inline_max_bytes")))
    if not 1 <= inline <= _INLINE_CEILING:
        raise ConfigError(
            "api.inline_max_bytes",
            f"must be between 1 and {_INLINE_CEILING} (the Lambda payload limit after base64)",
        )
    batch = cast(int, values.get("api.batch_max_files", _default(ApiConfig, "batch_max_files")))
    if not 1 <= batch <= _BATCH_CEILING:
        raise ConfigError("api.batch_max_files", f"must be between 1 and {_BATCH_CEILING}")
    threshold = cast(
        int,
        values.get(
            "api.multipart_threshold_bytes", _default(ApiConfig, "multipart_threshold_bytes")
        ),
    )
    if threshold < 8 * 1024**2:
        raise ConfigError("api.multipart_threshold_bytes", "must be at least 8388608 (8 MiB)")
    if "api.batch_linger_seconds" in values:
        warnings.append("api.batch_linger_seconds is replaced by quota.quiet_seconds")
    return ApiConfig(
        url=url or "",
        api_key=key,
        user_id=cast("str | None", values.get("api.user_id")),
        timeout_seconds=timeout,
        inline_max_bytes=inline,
        batch_max_files=batch,
        multipart_threshold_bytes=threshold,
    )


def _check_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError("api.url", f"is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("api.url", "must be an http(s) URL with a host")
    if parts.username or parts.password:
        raise ConfigError("api.url", "must not carry credentials; use api.api_key_file")
    if parts.query or parts.fragment:
        raise ConfigError("api.url", "must not have a query or fragment")
    if port == 0:
        raise ConfigError("api.url", "port 0 is not a valid port")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError("api.url", "plain http:// is only allowed for loopback; use https://")
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_SOURCE_RANK = {"file": 0, "env": 1, "flag": 2}


def _api_key(
    values: Mapping[str, object],
    layers: Mapping[str, _Value],
    environ: Mapping[str, str],
    required: bool,
    warnings: list[str],
) -> Secret | None:
    """The key from the highest layer that sets api.api_key or api.api_key_file, else the
    systemd credential. Equal layers: the key itself wins over the file naming it."""
    inline, named = layers.get("api.api_key"), layers.get("api.api_key_file")
    if inline is not None and named is not None and inline.source == named.source == "file":
        raise ConfigError("api.api_key", "set either api.api_key or api.api_key_file, not both")
    if inline is not None and (named is None or _rank(inline) >= _rank(named)):
        return _accept_key("api.api_key", cast(str, values["api.api_key"]))
    try:
        if named is not None:
            path = cast(Path, values["api.api_key_file"])
            return _read_key_file("api.api_key_file", path, warnings)
        credentials = environ.get("CREDENTIALS_DIRECTORY")
        if credentials and (Path(credentials) / _CREDENTIAL_NAME).is_file():
            return _read_key_file("api.api_key", Path(credentials) / _CREDENTIAL_NAME, None)
    except ConfigError as exc:
        if required:
            raise
        # e.g. `service install` before the systemd credential exists: not needed yet.
        warnings.append(str(exc))
    return None


def _rank(value: _Value) -> int:
    return _SOURCE_RANK[value.source.partition(":")[0]]


def _read_key_file(key: str, path: Path, warnings: list[str] | None) -> Secret:
    try:
        text = path.read_text(encoding="utf-8")
        info = path.stat()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "unreadable"
        raise ConfigError(key, f"cannot read the API key from {path}: {reason}") from None
    # Group-readable is fine for a file someone else owns: that is how a system service's account
    # reads a root-owned key it can reload (docs/deploy.md). Ours, or world-readable, is not.
    shared = stat.S_IROTH | (stat.S_IRGRP if info.st_uid == os.geteuid() else 0)
    if warnings is not None and info.st_mode & shared:
        warnings.append(f"{path} (the API key) is readable by group or others; chmod 600 it")
    return _accept_key(key, text.rstrip("\r\n"))


def _accept_key(key: str, text: str) -> Secret:
    # A newline or space inside a header value would make requests raise with the value in the
    # message, so refuse it here, without echoing it.
    if not text:
        raise ConfigError(key, "the API key is empty")
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise ConfigError(key, "the API key contains whitespace or control characters")
    register_secret(text)
    return Secret(text)


_QUOTA = QuotaConfig()  # every field has a default: the defaults themselves


def _default(cls: type[object], name: str) -> Any:
    """The default a config dataclass declares for ``name``: defaults are written there only."""
    return next(f.default for f in fields(cast(Any, cls)) if f.name == name)


def _build_quota(values: Mapping[str, object]) -> QuotaConfig:
    rps = cast(float, values.get("quota.requests_per_second", _QUOTA.requests_per_second))
    if rps <= 0:
        raise ConfigError("quota.requests_per_second", "must be > 0")
    burst = cast(int, values.get("quota.burst", _QUOTA.burst))
    if burst < 1:
        raise ConfigError("quota.burst", "must be at least 1")
    daily = cast(int, values.get("quota.daily_requests", _QUOTA.daily_requests))
    if daily < 0:
        raise ConfigError("quota.daily_requests", "must be >= 0 (0 means no daily limit)")
    margin = cast(float, values.get("quota.margin_seconds", _QUOTA.margin_seconds))
    if margin < 0:
        raise ConfigError("quota.margin_seconds", "must be >= 0")
    return QuotaConfig(
        requests_per_second=rps,
        burst=burst,
        daily_requests=daily,
        reset_utc=cast(time, values.get("quota.reset_utc", _QUOTA.reset_utc)),
        margin_seconds=margin,
        pacing=_build_pacing(values),
    )


def _build_pacing(values: Mapping[str, object]) -> Pacing:
    default = Pacing()
    old = values.get("api.batch_linger_seconds")
    quiet = cast(
        float, values.get("quota.quiet_seconds", old if old is not None else default.quiet_seconds)
    )
    if not 0 <= quiet <= 3600:
        key = (
            "quota.quiet_seconds" if "quota.quiet_seconds" in values else "api.batch_linger_seconds"
        )
        raise ConfigError(key, "must be between 0 and 3600")
    prompt = cast(int, values.get("quota.prompt_requests", default.prompt_requests))
    if prompt < 0:
        raise ConfigError("quota.prompt_requests", "must be >= 0")
    reserve = cast(int, values.get("quota.reserve_requests", default.reserve_requests))
    if reserve < 0:
        raise ConfigError("quota.reserve_requests", "must be >= 0")
    last_call = cast(float, values.get("quota.last_call_seconds", default.last_call_seconds))
    if not 0 <= last_call <= 43_200:
        raise ConfigError("quota.last_call_seconds", "must be between 0 and 43200 (12 h)")
    learn = cast(int, values.get("quota.learn_days", default.learn_days))
    if not 0 <= learn <= 60:
        raise ConfigError("quota.learn_days", "must be between 0 (do not learn) and 60")
    # Delivered items are pruned after keep_delivered_days: older days would look empty.
    keep = cast(float, values.get("state.keep_delivered_days", StateConfig.keep_delivered_days))
    if keep > 0:
        learn = min(learn, int(keep))
    return Pacing(
        quiet_seconds=quiet,
        prompt_requests=prompt,
        reserve_requests=reserve,
        last_call_seconds=last_call,
        learn_days=learn,
    )


def _build_metrics(values: Mapping[str, object]) -> MetricsConfig:
    """`metrics.listen`: "HOST:PORT", "[V6]:PORT" or ":PORT"/"PORT" (loopback)."""
    listen = values.get("metrics.listen")
    if listen is None:
        return MetricsConfig()
    text = cast(str, listen).strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    host = host.removeprefix("[").removesuffix("]") or "127.0.0.1"
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError("metrics.listen", f"{text!r} is not HOST:PORT, e.g. 127.0.0.1:9464")
    if any(ch.isspace() or not ch.isprintable() for ch in host):
        raise ConfigError("metrics.listen", f"{host!r} is not a host name or address")
    return MetricsConfig(host=host, port=int(port_text))


def _state_dir(
    values: Mapping[str, object], environ: Mapping[str, str], config_path: Path | None
) -> Path:
    explicit = values.get("state.dir")
    if explicit is not None:
        return cast(Path, explicit)
    # systemd's StateDirectory= of a system unit (/var/lib/exportsync), colon-separated if several.
    # The user unit sets none: systemd 252 would put it under ~/.config, where no shell looks.
    systemd_dirs = environ.get("STATE_DIRECTORY", "")
    if systemd_dirs:
        return Path(systemd_dirs.split(":")[0])
    return default_state_dir(config_path, environ)


def default_state_dir(config_path: Path | None, environ: Mapping[str, str]) -> Path:
    """The spool's folder when the config names none: SYSTEM_STATE_DIR for a config in
    SYSTEM_CONFIG_DIR, else the user's state folder ($XDG_STATE_HOME/exportsync, by default
    ~/.local/state/exportsync; macOS: ~/Library/Application Support/exportsync). The same for
    a service and a shell: it depends on the config and the user's environment only."""
    if config_path is not None and SYSTEM_CONFIG_DIR in Path(os.path.abspath(config_path)).parents:
        return SYSTEM_STATE_DIR
    if sys.platform == "darwin":
        return Path(platformdirs.user_state_dir("exportsync", appauthor=False))
    return user_state_home(environ) / "exportsync"


def user_state_home(environ: Mapping[str, str]) -> Path:
    """$XDG_STATE_HOME, or ~/.local/state when it is unset or relative (the XDG spec ignores a
    relative one)."""
    named = environ.get("XDG_STATE_HOME", "").strip()
    if os.path.isabs(named):
        return Path(named)
    return Path(environ.get("HOME") or str(Path.home())) / ".local" / "state"
