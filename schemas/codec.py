"""Bytes on the wire: every record is one JSON object, encoded with orjson.

Dataclass records encode directly (orjson serialises dataclasses, enums and tuples) and decode
with ``Record.from_json_dict``. Unknown keys are ignored on decode so that producers can add
optional fields without breaking older consumers.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

import orjson

T = TypeVar("T", bound="JsonRecord")


class JsonRecord(Protocol):
    @classmethod
    def from_json_dict(cls: type[T], data: dict[str, Any]) -> T: ...


def encode(record: object) -> bytes:
    """Serialise a record (dataclass or plain JSON value) to compact JSON bytes."""
    return orjson.dumps(record)


def decode(cls: type[T], data: bytes) -> T:
    """Parse JSON bytes written by :func:`encode` back into ``cls``."""
    return cls.from_json_dict(orjson.loads(data))


def pick(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``data`` that are fields of dataclass ``cls`` (forward compatibility)."""
    names: frozenset[str] = cls.__dataclass_fields__.keys()  # type: ignore[attr-defined]
    return {k: v for k, v in data.items() if k in names}
