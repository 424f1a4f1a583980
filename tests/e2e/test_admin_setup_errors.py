"""The admin tool where it is not set up yet: without boto3 (a plain `pip install .`), without
AWS credentials or a region. One line naming the fix, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from support.devstack import command_env

pytestmark = pytest.mark.integration

# Runs the tool as `python -m exportsync_api.admin` does, with boto3 made unimportable first.
_WITHOUT_BOTO3 = (
    "import runpy, sys; sys.modules['boto3'] = None; sys.modules['botocore'] = None; "
    "sys.argv = ['admin', *sys.argv[1:]]; "
    "runpy.run_module('exportsync_api.admin', run_name='__main__')"
)
_LIST = ["--table", "exportsync-users", "--usage-plan-id", "p1", "users", "list"]


def _env(tmp_path: Path) -> dict[str, str]:
    """No credentials anywhere: not in the environment, no ~/.aws, no instance metadata."""
    env = command_env()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        env.pop(name, None)
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SHARED_CREDENTIALS_FILE"):
        env.pop(name, None)
    env.update(HOME=str(tmp_path), AWS_EC2_METADATA_DISABLED="true")
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=60, check=False)


def test_without_boto3_it_names_the_extra_to_install(tmp_path: Path) -> None:
    done = _run([sys.executable, "-c", _WITHOUT_BOTO3, *_LIST], _env(tmp_path))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert "pip install 'exportsync[lambda]'" in done.stderr
    assert done.stdout == ""


def test_without_credentials_or_region_it_says_which_and_what_to_set(tmp_path: Path) -> None:
    admin = [sys.executable, "-m", "exportsync_api.admin", "--endpoint-url", "http://127.0.0.1:9"]
    env = _env(tmp_path)
    done = _run([*admin, *_LIST], env)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert "--region" in done.stderr
    done = _run([*admin, "--region", "eu-central-1", *_LIST], env)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert "AWS_ACCESS_KEY_ID" in done.stderr
    assert "AWS_ACCESS_KEY_ID=testing" in done.stderr  # what the devstack takes
