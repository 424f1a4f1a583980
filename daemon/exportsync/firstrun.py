"""`exportsync setup`: the first run for a person.

Asks for (or takes from flags) the API URL, the key and the export folder; writes the key to a
0600 file and the config, which names that file, to the platform's config folder; runs `check`;
then offers to install the user service. Every question has a flag, so it runs unattended too.
The key is never written into the TOML, echoed, or logged.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from exportsync.configpath import USER_CONFIG_NAME, user_config_path
from exportsync.errors import ConfigError
from exportsync.fs.durable import atomic_write

__all__ = [
    "CONFIG_NAME",
    "KEY_NAME",
    "Prompter",
    "SetupAnswers",
    "as_overrides",
    "default_config_path",
    "gather",
    "key_file_for",
    "read_key",
    "render_config",
    "write_setup",
]

CONFIG_NAME = USER_CONFIG_NAME
KEY_NAME = "api_key"


@dataclass(frozen=True)
class SetupAnswers:
    api_url: str
    api_key: str
    watch_dir: Path
    user_id: str | None = None


@dataclass
class Prompter:
    """Questions on a terminal; `ask`/`ask_secret` are injectable for tests."""

    interactive: bool
    ask: Callable[[str], str] = input
    ask_secret: Callable[[str], str] = getpass.getpass

    def value(self, flag: str, question: str, given: str | None, default: str = "") -> str:
        if given:
            return given
        if not self.interactive:
            if default:
                return default
            raise ConfigError(flag, "missing (no terminal to ask on): pass it as a flag")
        suffix = f" [{default}]" if default else ""
        answer = self.ask(f"{question}{suffix}: ").strip()
        if not answer and not default:
            raise ConfigError(flag, "no answer given")
        return answer or default

    def confirm(self, question: str) -> bool:
        if not self.interactive:
            return False
        return self.ask(f"{question} [y/N]: ").strip().lower() in ("y", "yes")


def default_config_path() -> Path:
    """Where a person's config lives on this platform (~/.config/exportsync/ on Linux): the
    third place every command looks (configpath.find_config)."""
    return user_config_path()


def gather(
    prompter: Prompter,
    *,
    api_url: str | None,
    api_key: str | None,
    watch_dir: str | None,
    user_id: str | None,
) -> SetupAnswers:
    """The answers, from flags first, then questions; the key only through a hidden prompt."""
    url = prompter.value("--api-url", "API URL (https://…/prod)", api_url)
    if api_key is None:
        if not prompter.interactive:
            raise ConfigError("--api-key-file", "missing: pass --api-key-file or --api-key-stdin")
        api_key = prompter.ask_secret("API key (not shown): ")
    key = api_key.strip()
    if not key:
        raise ConfigError("--api-key-file", "the API key is empty")
    default_dir = str(Path.home() / "Exports")
    folder = Path(prompter.value("--watch-dir", "export folder", watch_dir, default_dir))
    folder = Path(os.path.abspath(folder.expanduser()))
    who = user_id or ""
    if not who and prompter.interactive:
        who = prompter.ask("user id for sessions without one (optional): ").strip()
    return SetupAnswers(url.strip(), key, folder, who or None)


def as_overrides(answers: SetupAnswers) -> dict[str, object]:
    """The answers as config keys, for validating them before anything is written."""
    return {
        "watch.dir": str(answers.watch_dir),
        "api.url": answers.api_url,
        "api.api_key": answers.api_key,
        "api.user_id": answers.user_id,
    }


def render_config(answers: SetupAnswers, key_file: Path) -> str:
    """The TOML text: every value a JSON string, which TOML reads as the same basic string."""
    lines = [
        "# Written by `exportsync setup`. Every key is described in exportsync's README",
        "# (section Configuration); `exportsync check` validates this file.",
        "[watch]",
        f"dir = {json.dumps(str(answers.watch_dir))}",
        "",
        "[api]",
        f"url = {json.dumps(answers.api_url)}",
        "# The key itself lives in this file (mode 600), never here.",
        f"api_key_file = {json.dumps(str(key_file))}",
    ]
    if answers.user_id:
        lines.append(f"user_id = {json.dumps(answers.user_id)}")
    return "\n".join(lines) + "\n"


def write_setup(answers: SetupAnswers, config_path: Path, *, force: bool) -> Path:
    """Write the key file (0600) and the config beside it; returns the key file's path."""
    if "$" in str(answers.watch_dir):
        raise ConfigError("--watch-dir", "a path with '$' would be read as a variable")
    if config_path.exists() and not force:
        raise ConfigError("config", f"{config_path} exists; pass --force to replace it")
    key_file = key_file_for(config_path)
    if not force and _holds_another_key(key_file, answers.api_key):
        raise ConfigError(
            "--api-key-file",
            f"{key_file} already holds a different API key; pass --force to replace it",
        )
    config_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Readable by the owner alone from the first byte.
    atomic_write(key_file, answers.api_key + "\n", mode=0o600)
    atomic_write(config_path, render_config(answers, key_file), mode=0o600)
    return key_file


def key_file_for(config_path: Path) -> Path:
    """The key file beside a config, one per config: `api_key` for the default name (what the
    docs and units name), `<name>.api_key` for any other, so `setup --config a.toml` and
    `setup --config b.toml` in one folder never share (or overwrite) a key."""
    if config_path.name == CONFIG_NAME:
        return config_path.parent / KEY_NAME
    return config_path.parent / f"{config_path.stem}.{KEY_NAME}"


def _holds_another_key(key_file: Path, key: str) -> bool:
    try:
        return key_file.read_text(encoding="utf-8").strip() != key
    except FileNotFoundError:
        return False
    except (OSError, UnicodeDecodeError):
        return True  # unreadable: not ours to replace without --force


def read_key(path: str | None, stdin: TextIO | None = None) -> str | None:
    """The key from --api-key-file PATH or, with "-", from stdin."""
    if path is None:
        return None
    if path == "-":
        return (stdin or sys.stdin).readline()
    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("--api-key-file", f"cannot read {path}: {exc.strerror}") from None
