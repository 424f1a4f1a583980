"""Logging: JSON lines off a TTY, console on one, and the API key never written anywhere."""

from __future__ import annotations

import importlib
import io
import json
import logging
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from exportsync.config import Secret
from exportsync.logs import REDACTED, configure_logging, get_logger, redact_secrets, register_secret

KEY = "sk-live-7f3a9c1e5b2d4f60"


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    for handler in list(logging.getLogger().handlers):
        if type(handler).__name__ == "_StdlibBridge":
            logging.getLogger().removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_when_not_a_tty() -> None:
    out = io.StringIO()
    configure_logging(None, "info", out)
    get_logger("exportsync.test").info("file_ready", path="/x/a.csv", queue_depth=3)
    (line,) = lines(out)
    assert line["event"] == "file_ready"
    assert line["level"] == "info"
    assert line["path"] == "/x/a.csv"
    assert line["queue_depth"] == 3
    assert line["logger"] == "exportsync.test"
    stamp = datetime.fromisoformat(line["timestamp"])
    assert stamp.utcoffset() is not None
    assert stamp.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_console_on_a_tty() -> None:
    out = FakeTTY()
    configure_logging(None, "info", out)
    get_logger("t").info("file_ready", path="/x/a.csv")
    text = out.getvalue()
    assert "file_ready" in text
    assert "/x/a.csv" in text
    assert "\x1b[" in text  # colours for a person at a terminal
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_explicit_format_beats_tty_detection() -> None:
    out = FakeTTY()
    configure_logging("json", "info", out)
    get_logger("t").info("x")
    assert lines(out)[0]["event"] == "x"


def test_level_filters() -> None:
    out = io.StringIO()
    configure_logging("json", "warning", out)
    log = get_logger("t")
    log.info("quiet")
    log.warning("loud")
    assert [line["event"] for line in lines(out)] == ["loud"]


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="verbose"):
        configure_logging("json", "verbose", io.StringIO())


def test_logger_created_before_configuration_follows_it() -> None:
    early = get_logger("early")
    out = io.StringIO()
    configure_logging("json", "info", out)
    early.info("after")
    assert lines(out)[0]["event"] == "after"


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_registered_secret_never_written(fmt: str) -> None:
    register_secret(KEY)
    out = io.StringIO()
    configure_logging(fmt, "debug", out)  # type: ignore[arg-type]
    log = get_logger("t")
    log.info("equal", key=KEY)
    log.info(f"inside the event {KEY}")
    log.info("nested", request={"headers": [f"Bearer {KEY}"]}, items=(KEY,))
    log.info("object", obj=ValueError(f"refused {KEY}"), secret_obj=Secret(KEY))
    try:
        api_key = KEY  # a local: tracebacks must not show locals
        raise RuntimeError(f"request failed with key {api_key}")
    except RuntimeError:
        log.exception("delivery_failed")
    text = out.getvalue()
    assert KEY not in text
    assert REDACTED in text
    assert "delivery_failed" in text
    assert "RuntimeError" in text


@pytest.mark.parametrize("name", ["api_key", "x-api-key", "X-API-Key", "Authorization", "apikey"])
def test_sensitive_key_names_are_masked(name: str) -> None:
    out = io.StringIO()
    configure_logging("json", "info", out)
    get_logger("t").info("request", **{name: "not-registered-value"}, headers={name: "v2-secret"})
    (line,) = lines(out)
    assert line[name] == REDACTED
    assert line["headers"][name] == REDACTED
    assert "not-registered-value" not in out.getvalue()


def test_harmless_key_names_pass_through() -> None:
    out = io.StringIO()
    configure_logging("json", "info", out)
    get_logger("t").info("config", api_key_file="/etc/exportsync/api_key", tokens=2.5)
    (line,) = lines(out)
    assert line["api_key_file"] == "/etc/exportsync/api_key"
    assert line["tokens"] == 2.5


def test_stdlib_warnings_join_the_same_output_and_are_redacted() -> None:
    register_secret(KEY)
    out = io.StringIO()
    configure_logging("json", "debug", out)
    library = logging.getLogger("urllib3.connectionpool")
    library.info("chatty detail")  # below warning: dropped
    library.warning("Retrying with header %s", KEY)
    (line,) = lines(out)
    assert line["event"] == "library_log"
    assert line["logger"] == "urllib3.connectionpool"
    assert line["level"] == "warning"
    assert KEY not in line["message"]


def test_reconfiguring_does_not_duplicate_the_bridge() -> None:
    configure_logging("json", "info", io.StringIO())
    out = io.StringIO()
    configure_logging("json", "info", out)
    logging.getLogger("watchdog").error("boom")
    assert len(lines(out)) == 1


def test_capture_logs_sees_events_and_bound_fields() -> None:
    with capture_logs() as captured:
        get_logger("t").bind(path=Path("/x")).warning("file_rejected", reason="symlink")
    assert captured == [
        {
            "event": "file_rejected",
            "log_level": "warning",
            "path": Path("/x"),
            "reason": "symlink",
        }
    ]


@pytest.mark.parametrize(
    "module",
    [
        "fs.aftercare",
        "cli.run",
        "daemon",
        "delivery",
        "batcher",
        "sender",
        "answers",
        "outcomes",
        "intake",
        "notify",
        "rootwatch",
        "watcher",
    ],
)
def test_every_module_logger_names_its_module(module: str) -> None:
    """A JSON line says which module wrote it, whichever way the module made its logger."""
    out = io.StringIO()
    configure_logging("json", "info", out)
    loaded = importlib.import_module(f"exportsync.{module}")
    logger = getattr(loaded, "log", None) or loaded._log
    logger.info("probe")
    (line,) = lines(out)
    assert line["logger"] == f"exportsync.{module}"


def test_a_plain_structlog_logger_keeps_its_name() -> None:
    out = io.StringIO()
    configure_logging("json", "info", out)
    structlog.get_logger("exportsync_devstack.gateway").warning("probe")
    (line,) = lines(out)
    assert line["logger"] == "exportsync_devstack.gateway"


def test_redact_processor_is_pure() -> None:
    register_secret(KEY)
    event = {"event": "x", "value": KEY, "n": 1}
    assert redact_secrets(None, "info", event) == {"event": "x", "value": REDACTED, "n": 1}
    assert event["value"] == KEY  # the caller's dict is untouched


def test_a_name_that_is_not_utf8_is_logged_with_escapes() -> None:
    out = io.StringIO()
    configure_logging("json", "info", out)
    get_logger("t").info("file_ready", path=os.fsdecode(b"/x/r\xff\xfe.csv"))
    out.getvalue().encode("utf-8")  # strict: no lone surrogate reaches the stream
    (line,) = lines(out)
    assert line["path"] == "/x/r\\xff\\xfe.csv"
