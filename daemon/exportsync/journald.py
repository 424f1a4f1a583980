"""journald's view of a log line: a `<N>` syslog-priority prefix when the stream is the journal.

systemd connects a service's stdout/stderr to the journal and sets ``JOURNAL_STREAM=DEV:INODE`` to
that stream's identity; a line that starts with ``<N>`` gets priority N (sd-daemon(3)), so
``journalctl -p warning`` can filter. Comparing the identity (not just the variable's presence)
keeps the prefix out of a pipe or file the output was redirected to.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TextIO

from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["PRIORITIES", "is_journal_stream", "journal_log_stream", "with_priority_prefix"]

# syslog priorities (sd-daemon.h SD_ERR, SD_WARNING, ...), by structlog method / level name.
PRIORITIES = {
    "critical": 2,
    "exception": 3,
    "error": 3,
    "warning": 4,
    "warn": 4,
    "info": 6,
    "debug": 7,
}
_DEFAULT_PRIORITY = 6


def is_journal_stream(stream: TextIO, env: Mapping[str, str] | None = None) -> bool:
    """True when `stream`'s file is the one ``JOURNAL_STREAM`` names."""
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep or not dev.isdigit() or not ino.isdigit():
        return False
    try:
        info = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):  # no real file behind it (StringIO, closed)
        return False
    return (info.st_dev, info.st_ino) == (int(dev), int(ino))


def journal_log_stream(
    stdout: TextIO, stderr: TextIO, env: Mapping[str, str] | None = None
) -> TextIO:
    """Where the daemon logs: stderr, unless the journal listens on stdout alone."""
    if not is_journal_stream(stderr, env) and is_journal_stream(stdout, env):
        return stdout
    return stderr


def with_priority_prefix(renderer: Processor) -> Processor:
    """Wrap the final renderer: its text, led by ``<N>`` for the event's level."""

    def render(logger: WrappedLogger, method: str, event_dict: EventDict) -> str:
        level = str(event_dict.get("level", method)).lower()
        priority = PRIORITIES.get(level, PRIORITIES.get(method, _DEFAULT_PRIORITY))
        rendered = renderer(logger, method, event_dict)
        text = rendered.decode() if isinstance(rendered, bytes) else str(rendered)
        return f"<{priority}>{text}"

    return render
