"""The daemon's configuration: defaults, then the TOML file, then the environment, then CLI flags.

Everything is validated once, here; every problem is a `ConfigError` naming the dotted key
(``watch.dir``, ``api.url``...). Keys and sections are the ones README.md lists, all documented in
``config/exportsync.example.toml``. Environment variables are
``EXPORTSYNC_<SECTION>_<KEY>`` (``EXPORTSYNC_WATCH_DIR``, ``EXPORTSYNC_LOG_LEVEL``...), except
the API key, which is ``EXPORTSYNC_API_KEY``. Relative paths in the file are relative to the
file's folder.

Each key is one field of a section below, declared with `schema.setting` (its default, parser
and range); the known keys, their environment names and their checks are read from there.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import stat
import sys
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from datetime import time
from pathlib import Path
from typing import Any, Literal, TypeVar, cast
from urllib.parse import urlsplit

from exportsync.configpath import ENV_CONFIG
from exportsync.errors import ConfigError
from exportsync.logs import register_secret
from exportsync.matcher import DEFAULT_IGNORE_GLOBS
from exportsync.pacing import Pacing
from exportsync.schema import (
    Range,
    Setting,
    as_bool,
    as_float,
    as_globs,
    as_int,
    as_path,
    as_time,
    one_of,
    setting,
    setting_of,
)
from exportsync_wire import limits

__all__ = [
    "ENV_API_KEY",
    "ENV_CONFIG",
    "FIELD_KEYS",
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

_S = TypeVar("_S")
AfterUpload = Literal["keep", "move", "delete"]
LogFormat = Literal["json", "console"]


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
    dir: Path = setting(parse=as_path, built=True)
    recursive: bool = setting(False, as_bool)
    csv_globs: tuple[str, ...] = setting(("*.csv",), as_globs)
    session_globs: tuple[str, ...] = setting(("*.session.json",), as_globs)
    ignore_globs: tuple[str, ...] = setting(DEFAULT_IGNORE_GLOBS, as_globs)
    after_upload: AfterUpload = setting("keep", one_of("keep", "move", "delete"))
    settle_seconds: float = setting(2.0, as_float, Range(above=0, high=3600))
    use_polling: bool = setting(False, as_bool, key="polling")


@dataclass(frozen=True)
class ApiConfig:
    url: str = setting(built=True)
    api_key: Secret | None = setting(built=True)
    user_id: str | None = setting(built=True)
    timeout_seconds: float = setting(30.0, as_float, Range(above=0))
    inline_max_bytes: int = setting(
        limits.INLINE_BODY_BYTES,
        as_int,
        Range(
            1,
            limits.INLINE_CEILING_BYTES,
            says="must be between {low} and {high} (the Lambda payload limit after base64)",
        ),
    )
    batch_max_files: int = setting(
        limits.MAX_BATCH_ENTRIES, as_int, Range(1, limits.MAX_BATCH_ENTRIES)
    )
    # Files above this go up in parts (a multipart upload).
    multipart_threshold_bytes: int = setting(
        100 * 1024**2, as_int, Range(low=8 * 1024**2, says="must be at least {low} (8 MiB)")
    )


@dataclass(frozen=True)
class QuotaConfig:
    requests_per_second: float = setting(1.0, as_float, Range(above=0))
    burst: int = setting(1, as_int, Range(low=1))
    daily_requests: int = setting(
        10, as_int, Range(low=0, says="must be >= {low} (0 means no daily limit)")
    )
    reset_utc: time = setting(time(0, 0), as_time)
    margin_seconds: float = setting(0.25, as_float, Range(low=0))
    # Its fields are keys under [quota] too (quota.quiet_seconds...).
    pacing: Pacing = field(default_factory=Pacing)


@dataclass(frozen=True)
class StateConfig:
    dir: Path = setting(parse=as_path, built=True)
    # Delivered items older than this are pruned from the spool (0: kept forever).
    keep_delivered_days: float = setting(
        30.0, as_float, Range(0, 36500, says="must be from {low} (keep forever) to {high}")
    )


@dataclass(frozen=True)
class LogConfig:
    # None: console on a terminal, json otherwise (logs.configure_logging).
    format: LogFormat | None = setting(None, one_of("json", "console"))
    level: str = setting("info", one_of("debug", "info", "warning", "error"))


@dataclass(frozen=True)
class MetricsConfig:
    """Where /metrics listens; None: no endpoint (the default). One key: metrics.listen."""

    host: str | None = setting(None, key="listen", built=True)
    port: int = setting(9464, key="listen", built=True)


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


# --- the schema, read from the sections above ----------------------------------------------------

_SECTIONS: dict[str, type[Any]] = {
    "watch": WatchConfig,
    "api": ApiConfig,
    "quota": QuotaConfig,
    "state": StateConfig,
    "log": LogConfig,
    "metrics": MetricsConfig,
}
# Keys that fill no field of their own.
_EXTRA: dict[str, Setting] = {
    # Where api.api_key is read from (`_api_key`).
    "api.api_key_file": Setting(as_path),
    # Replaced by quota.quiet_seconds; still read (with a warning) so old files keep working.
    "api.batch_linger_seconds": Setting(as_float),
}


def _walk(section: str, cls: type[Any], path: str) -> Iterator[tuple[str, str, Setting]]:
    """(field path, dotted key, setting) for each key a section's fields declare; a nested
    dataclass (quota's pacing) holds keys of the same section."""
    for item in fields(cls):
        rule = setting_of(item)
        nested: object = item.default_factory
        if rule is not None:
            yield f"{path}.{item.name}", f"{section}.{rule.key or item.name}", rule
        elif isinstance(nested, type) and is_dataclass(nested):
            yield from _walk(section, nested, f"{path}.{item.name}")


_FIELDS = [entry for name, cls in _SECTIONS.items() for entry in _walk(name, cls, name)]
_RULES: dict[str, Setting] = {key: rule for _, key, rule in _FIELDS} | _EXTRA
_KEYS_BY_SECTION: dict[str, set[str]] = {}
for _key in _RULES:
    _KEYS_BY_SECTION.setdefault(_key.partition(".")[0], set()).add(_key.partition(".")[2])

KNOWN_KEYS: frozenset[str] = frozenset(_RULES)
"""Every dotted key the loader accepts (file, environment or flag)."""

FIELD_KEYS: Mapping[str, str] = {path: key for path, key, _ in _FIELDS}
"""The config key behind each field, by the field's path in a Config: ``watch.use_polling`` is
``watch.polling``, ``quota.pacing.quiet_seconds`` is ``quota.quiet_seconds``."""


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
    return Config(
        watch=_build_watch(values, need_watch, environ, warnings),
        api=_build_api(values, layers, environ, require_api, warnings),
        quota=_section(QuotaConfig, "quota", values, pacing=_build_pacing(values)),
        state=_build_state(values, environ, config_path),
        log=_section(LogConfig, "log", values),
        path=config_path,
        metrics=_build_metrics(values),
        warnings=tuple(warnings),
        explicit=frozenset(layers),
    )


def _section(cls: type[_S], section: str, values: Mapping[str, object], **built: object) -> _S:
    """A section from its keys' values, each held to its range; a key not given keeps the field's
    default. `built` fills the fields the loader works out itself."""
    given: dict[str, object] = dict(built)
    for item in fields(cast(Any, cls)):
        rule = setting_of(item)
        if rule is None or rule.built or item.name in given:
            continue
        key = f"{section}.{rule.key or item.name}"
        if key in values:
            given[item.name] = _checked(key, rule, values[key])
    return cls(**given)


def _checked(key: str, rule: Setting, value: object) -> object:
    if rule.range is not None:
        problem = rule.range.problem(cast(float, value))
        if problem is not None:
            raise ConfigError(key, problem)
    return value


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
        if section not in _KEYS_BY_SECTION:
            raise ConfigError(section, f"unknown section{_suggest(section, _KEYS_BY_SECTION)}")
        if not isinstance(table, dict):
            raise ConfigError(section, "must be a table, e.g. [" + section + "]")
        for name, raw in table.items():
            key = f"{section}.{name}"
            _check_known(key)
            flat[key] = raw
    return flat


def _from_env(environ: Mapping[str, str], warnings: list[str]) -> dict[str, _Value]:
    known = {env_var_for(key): key for key in KNOWN_KEYS}
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
    if section not in _KEYS_BY_SECTION:
        raise ConfigError(key, f"unknown section{_suggest(section, _KEYS_BY_SECTION)}")
    if name not in _KEYS_BY_SECTION[section]:
        raise ConfigError(key, f"unknown key{_suggest(name, _KEYS_BY_SECTION[section])}")


def _suggest(word: str, choices: Iterable[str]) -> str:
    import difflib  # noqa: PLC0415 -- only for a mistyped key: no running daemon carries it

    close = difflib.get_close_matches(word, sorted(choices), n=1)
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
    rule = _RULES[key]
    textual = value.source != "file" and isinstance(value.raw, str)
    where = "" if value.source in ("file", "flag") else f" (from {value.source[4:]})"
    try:
        if rule.parse is as_path:
            return _as_path(key, value, environ)
        return rule.parse(value.raw, textual)
    except ConfigError as exc:
        raise ConfigError(key, exc.message + where) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(key, f"{exc}{where}") from None


def _as_path(key: str, value: _Value, environ: Mapping[str, str]) -> Path:
    if isinstance(value.raw, Path):
        return _expand_path(str(value.raw), environ, key, value.base)
    return _expand_path(as_path(value.raw, False), environ, key, value.base)


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


# --- sections the loader builds itself -----------------------------------------------------


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
    return _section(WatchConfig, "watch", values, dir=directory)


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
    if "api.batch_linger_seconds" in values:
        warnings.append("api.batch_linger_seconds is replaced by quota.quiet_seconds")
    return _section(
        ApiConfig, "api", values, url=url or "", api_key=key, user_id=values.get("api.user_id")
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


def _build_pacing(values: Mapping[str, object]) -> Pacing:
    # The old name counts where the new one is not given, and an error names the one given.
    old = values.get("api.batch_linger_seconds")
    if "quota.quiet_seconds" not in values and old is not None:
        quiet = _checked("api.batch_linger_seconds", _RULES["quota.quiet_seconds"], old)
        values = {**values, "quota.quiet_seconds": quiet}
    pacing = _section(Pacing, "quota", values)
    # Delivered items are pruned after keep_delivered_days: older days would look empty.
    keep = values.get("state.keep_delivered_days", StateConfig.keep_delivered_days)
    if isinstance(keep, float) and 0 < keep < pacing.learn_days:
        pacing = replace(pacing, learn_days=int(keep))
    return pacing


def _build_state(
    values: Mapping[str, object], environ: Mapping[str, str], config_path: Path | None
) -> StateConfig:
    return _section(StateConfig, "state", values, dir=_state_dir(values, environ, config_path))


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
        # Imported here (and in `configpath`): a daemon on Linux never asks it.
        import platformdirs  # noqa: PLC0415

        return Path(platformdirs.user_state_dir("exportsync", appauthor=False))
    return user_state_home(environ) / "exportsync"


def user_state_home(environ: Mapping[str, str]) -> Path:
    """$XDG_STATE_HOME, or ~/.local/state when it is unset or relative (the XDG spec ignores a
    relative one)."""
    named = environ.get("XDG_STATE_HOME", "").strip()
    if os.path.isabs(named):
        return Path(named)
    return Path(environ.get("HOME") or str(Path.home())) / ".local" / "state"
