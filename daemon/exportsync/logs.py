"""structlog, configured once at the entry point: JSON lines for journald/files, console on a TTY.

Every line names the module that wrote it (``"logger": "exportsync.delivery"``): the logger
factory keeps the name given to `get_logger` (or to ``structlog.get_logger``) and `add_logger_name`
writes it. Every line passes through `redact_secrets` just before rendering, after tracebacks are
turned into data, so a registered secret (the API key) or a value under a key such as
``x-api-key`` or ``authorization`` is written as ``***`` wherever it appears, exceptions included.
Stdlib logging (urllib3, watchdog, botocore) is bridged into the same output at WARNING and above,
under the library's own logger name.
Under journald each line carries a `<N>` priority prefix (see `exportsync.journald`).
"""

from __future__ import annotations

import logging
import re
import sys
import types
from collections.abc import Mapping
from typing import Any, Literal, TextIO, cast


def _import_structlog() -> types.ModuleType:
    """structlog, imported without loading asyncio.

    `structlog.stdlib` and `structlog._native` import asyncio at their top for their `a*` (async)
    log methods alone, which exportsync never calls; asyncio brings ssl, subprocess, socket and
    selectors with it, about 1.7 MiB resident in every idle daemon. While structlog is imported
    they are handed a stand-in that imports the real asyncio at its first attribute lookup
    (`asyncio.get_running_loop` inside those methods), then the stand-in leaves `sys.modules`:
    every other importer gets the real module. Where asyncio is already loaded nothing changes.
    """
    if "asyncio" in sys.modules or "structlog" in sys.modules:
        import structlog  # noqa: PLC0415 -- the plain import; see the docstring

        return structlog
    stand_in = types.ModuleType("asyncio", "Imports the real asyncio at first use.")

    def real_attribute(name: str) -> object:
        if sys.modules.get("asyncio") is stand_in:  # asked for during structlog's own import
            del sys.modules["asyncio"]
        import asyncio  # noqa: PLC0415 -- the real module, the stand-in having left

        return getattr(asyncio, name)

    stand_in.__getattr__ = real_attribute  # type: ignore[method-assign] # PEP 562 module hook
    sys.modules["asyncio"] = stand_in
    try:
        import structlog  # noqa: PLC0415 -- with the stand-in in place

        return structlog
    finally:
        if sys.modules.get("asyncio") is stand_in:
            del sys.modules["asyncio"]


_import_structlog()

import structlog  # noqa: E402 -- imported above by _import_structlog
from structlog.tracebacks import ExceptionDictTransformer  # noqa: E402 -- likewise
from structlog.typing import (  # noqa: E402 -- likewise
    EventDict,
    FilteringBoundLogger,
    Processor,
    WrappedLogger,
)

from exportsync.fs.names import printable  # noqa: E402 -- after structlog, see above
from exportsync.journald import (  # noqa: E402 -- likewise
    is_journal_stream,
    journal_log_stream,
    with_priority_prefix,
)

__all__ = [
    "REDACTED",
    "NamedWriteLoggerFactory",
    "add_logger_name",
    "configure_logging",
    "get_logger",
    "redact_secrets",
    "register_secret",
]

REDACTED = "***"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_LEVELS["error"] = logging.ERROR
_SENSITIVE_KEY = re.compile(
    r"(x[-_])?api[-_]?key|(proxy[-_])?authorization|password|secret|cookie", re.IGNORECASE
)
# Substring replacement of very short values would shred unrelated text; real keys are long.
_MIN_SUBSTRING = 6
_MAX_DEPTH = 8

_MAX_REMEMBERED_KEYS = 1024
_sensitive_keys: dict[str, bool] = {}  # a dict's get and set are atomic: no lock needed

_secrets: tuple[str, ...] = ()  # replaced, never mutated, so the processor reads it lock-free


def register_secret(secret: str) -> None:
    """Redact `secret` from every log line from now on (the config loader registers the key)."""
    global _secrets  # noqa: PLW0603 -- one process-wide registry is the point
    if secret and secret not in _secrets:
        # Longest first, so a secret containing another is replaced whole.
        _secrets = tuple(sorted((*_secrets, secret), key=len, reverse=True))


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask registered secrets and sensitive keys, recursively."""
    secrets = _secrets
    out: EventDict = {}
    # The line's own keys inline, with its usual values (text, numbers) looked at here: `_scrub`
    # per value was a fifth of what a file of a burst cost the intake.
    for key, value in event_dict.items():
        kind = type(value)
        if isinstance(key, str) and _sensitive(key):
            out[key] = REDACTED
        elif kind is str:
            out[key] = _scrub_text(value, secrets)
        elif value is None or kind is int or kind is bool or kind is float:
            out[key] = value
        else:
            out[key] = _scrub(value, secrets, 1)
    return out


def _scrub(value: object, secrets: tuple[str, ...], depth: int) -> object:
    if isinstance(value, str):
        return _scrub_text(value, secrets)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth >= _MAX_DEPTH:
        return _scrub_text(repr(value), secrets)
    if isinstance(value, Mapping):
        return {
            key: REDACTED
            if isinstance(key, str) and _sensitive(key)
            else _scrub(item, secrets, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(item, secrets, depth + 1) for item in value]
    # Anything else is rendered through repr()/str() later: check what that would show.
    if secrets:
        try:
            shown = f"{value!r} {value!s}"
        except Exception:  # a broken __repr__ must not break logging
            return f"<unrepresentable {type(value).__name__}>"
        if any(secret in shown for secret in secrets):
            return _scrub_text(repr(value), secrets)
    return value


def _sensitive(key: str) -> bool:
    """Whether values under `key` are masked; remembered per key name (a line has about ten, the
    same ones every time, and the pattern was most of what a line cost)."""
    known = _sensitive_keys.get(key)
    if known is None:
        known = _SENSITIVE_KEY.fullmatch(key) is not None
        if len(_sensitive_keys) < _MAX_REMEMBERED_KEYS:  # keys from data (headers) stay bounded
            _sensitive_keys[key] = known
    return known


def _scrub_text(text: str, secrets: tuple[str, ...]) -> str:
    text = printable(text)  # a file name that is not UTF-8 is shown with \xff escapes
    for secret in secrets:
        if text == secret or (len(secret) >= _MIN_SUBSTRING and secret in text):
            text = text.replace(secret, REDACTED)
    return text


class _NamedWriteLogger(structlog.WriteLogger):
    """structlog's WriteLogger, remembering the name it was asked for."""

    def __init__(self, file: TextIO, name: str | None) -> None:
        super().__init__(file)
        self.name = name


class NamedWriteLoggerFactory:
    """Like ``structlog.WriteLoggerFactory``, but ``get_logger("a.b")`` keeps ``"a.b"`` (the stock
    factory drops its arguments, so no line could say which module wrote it)."""

    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        name = args[0] if args and isinstance(args[0], str) else None
        return _NamedWriteLogger(self._file, name)


def add_logger_name(logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: ``logger`` is the name the line's logger was created with."""
    name = getattr(logger, "name", None)
    if isinstance(name, str) and name:
        event_dict.setdefault("logger", name)
    return event_dict


class _StdlibBridge(logging.Handler):
    """Forward library log records into structlog, so they get the same format and redaction."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            logger: FilteringBoundLogger = structlog.get_logger(record.name)
            logger.log(
                record.levelno,
                "library_log",
                message=record.getMessage(),
                exc_info=record.exc_info or False,
            )
        except Exception:  # logging must never take the daemon down
            self.handleError(record)


def configure_logging(
    fmt: Literal["json", "console"] | None,
    level: str,
    stream: TextIO | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Configure structlog and the stdlib bridge, once at the entry point (tests may repeat).

    Without `stream`, lines go to stderr, or to stdout when only stdout is the journal's stream;
    on the journal's stream each line starts with its syslog priority (`journald`).
    """
    out = stream if stream is not None else journal_log_stream(sys.stdout, sys.stderr, env)
    tty = _isatty(out)
    chosen = fmt or ("console" if tty else "json")
    try:
        min_level = _LEVELS[level.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}") from None

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        add_logger_name,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: list[Processor]
    if chosen == "json":
        renderer = [
            # No locals in tracebacks: a local variable may well hold the key.
            structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False)),
            redact_secrets,
            structlog.processors.JSONRenderer(default=str),
        ]
    else:
        renderer = [
            structlog.processors.format_exc_info,  # text first, so it can be redacted
            redact_secrets,
            structlog.dev.ConsoleRenderer(colors=tty),
        ]
    if is_journal_stream(out, env):
        renderer[-1] = with_priority_prefix(renderer[-1])
    structlog.configure(
        processors=[*shared, *renderer],
        wrapper_class=structlog.make_filtering_bound_logger(min_level),
        logger_factory=NamedWriteLoggerFactory(out),
        context_class=dict,
        # Module-level loggers are created before this runs; don't freeze the old config in them.
        cache_logger_on_first_use=False,
    )
    _install_bridge()


def _install_bridge() -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _StdlibBridge):
            root.removeHandler(handler)
    root.addHandler(_StdlibBridge(level=logging.WARNING))
    root.setLevel(logging.WARNING)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False


def get_logger(name: str) -> FilteringBoundLogger:
    """A logger whose lines carry ``"logger": name``; safe to create at import time."""
    return cast(FilteringBoundLogger, structlog.get_logger(name))
