"""The session table's keys: ``user_id`` (partition) and ``timestamp`` (sort), both strings.

The devstack and the tests create the table from these; lambda/template.yaml states them in YAML,
and a test holds it to these.
"""

from __future__ import annotations

from typing import Final, Literal, TypedDict

__all__ = ["ATTRIBUTE_DEFINITIONS", "KEY_SCHEMA", "PARTITION_KEY", "SORT_KEY"]


class KeyElement(TypedDict):
    AttributeName: str
    KeyType: Literal["HASH", "RANGE"]


class AttributeDefinition(TypedDict):
    AttributeName: str
    AttributeType: Literal["S", "N", "B"]


PARTITION_KEY: Final = "user_id"
SORT_KEY: Final = "timestamp"
KEY_SCHEMA: Final[list[KeyElement]] = [
    {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
    {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
]
ATTRIBUTE_DEFINITIONS: Final[list[AttributeDefinition]] = [
    {"AttributeName": PARTITION_KEY, "AttributeType": "S"},
    {"AttributeName": SORT_KEY, "AttributeType": "S"},
]
