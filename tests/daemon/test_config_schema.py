"""The config schema: every field is a declared key, and each range says what it allows."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from exportsync.config import FIELD_KEYS, KNOWN_KEYS, Config, load_config
from exportsync.errors import ConfigError
from exportsync.schema import Range


def _leaf_fields(prefix: str, cls: type[object]) -> list[str]:
    out: list[str] = []
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        factory: object = item.default_factory
        if isinstance(factory, type) and dataclasses.is_dataclass(factory):
            out += _leaf_fields(f"{prefix}.{item.name}", factory)
        else:
            out.append(f"{prefix}.{item.name}")
    return out


def test_every_section_field_is_a_known_key() -> None:
    config = load_config(None, env={"HOME": "/nonexistent"}, require_api=False)
    sections = ("watch", "api", "quota", "state", "log", "metrics")
    leaves = [leaf for name in sections for leaf in _leaf_fields(name, type(getattr(config, name)))]
    assert sorted(FIELD_KEYS) == sorted(leaves)
    assert set(FIELD_KEYS.values()) <= KNOWN_KEYS
    assert FIELD_KEYS["watch.use_polling"] == "watch.polling"
    assert FIELD_KEYS["quota.pacing.quiet_seconds"] == "quota.quiet_seconds"
    assert {field.name for field in dataclasses.fields(Config)} >= set(sections)


# (key, a value just outside, the message, a value at the edge that is accepted)
RANGES = [
    ("watch.settle_seconds", 0, "must be > 0 and at most 3600", 3600),
    ("watch.settle_seconds", 3601, "must be > 0 and at most 3600", 0.01),
    ("api.timeout_seconds", 0, "must be > 0", 0.1),
    (
        "api.inline_max_bytes",
        4_500_001,
        "must be between 1 and 4500000 (the Lambda payload limit after base64)",
        4_500_000,
    ),
    ("api.batch_max_files", 0, "must be between 1 and 1000", 1000),
    ("api.multipart_threshold_bytes", 8388607, "must be at least 8388608 (8 MiB)", 8388608),
    ("quota.requests_per_second", 0, "must be > 0", 0.5),
    ("quota.burst", 0, "must be at least 1", 1),
    ("quota.daily_requests", -1, "must be >= 0 (0 means no daily limit)", 0),
    ("quota.margin_seconds", -1, "must be >= 0", 0),
    ("quota.quiet_seconds", 3601, "must be between 0 and 3600", 3600),
    ("quota.prompt_requests", -1, "must be >= 0", 0),
    ("quota.reserve_requests", -1, "must be >= 0", 0),
    ("quota.last_call_seconds", 43201, "must be between 0 and 43200 (12 h)", 43200),
    ("quota.learn_days", 61, "must be between 0 (do not learn) and 60", 60),
    ("state.keep_delivered_days", 36501, "must be from 0 (keep forever) to 36500", 36500),
]


@pytest.mark.parametrize(("key", "bad", "message", "edge"), RANGES)
def test_a_value_out_of_range_names_the_key_and_the_range(
    tmp_path: Path, key: str, bad: float, message: str, edge: float
) -> None:
    env = {"HOME": str(tmp_path)}
    with pytest.raises(ConfigError) as info:
        load_config(None, env=env, overrides={key: bad}, require_api=False)
    assert (info.value.key, info.value.message) == (key, message)
    load_config(None, env=env, overrides={key: edge}, require_api=False)


def test_the_old_linger_key_is_named_when_it_is_out_of_range(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(
            None,
            env={"HOME": str(tmp_path)},
            overrides={"api.batch_linger_seconds": 4000.0},
            require_api=False,
        )
    assert info.value.key == "api.batch_linger_seconds"


def test_range_words_itself_from_its_bounds() -> None:
    assert Range(above=0).problem(0) == "must be > 0"
    assert Range(low=2).problem(1) == "must be at least 2"
    assert Range(0, 1.5).problem(2) == "must be between 0 and 1.5"
    assert Range(0, 1.5).problem(1.5) is None
