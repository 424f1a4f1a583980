"""`exportsync completion (bash | zsh | fish)`."""

from __future__ import annotations

import argparse

import shtab

from exportsync.cli.common import EXIT_OK
from exportsync.cli.parser import build_parser

__all__ = ["command"]


def command(args: argparse.Namespace) -> int:
    """The completion script shtab builds from this very parser, so it never drifts."""
    print(shtab.complete(build_parser(), shell=args.shell), end="")
    return EXIT_OK
