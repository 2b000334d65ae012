"""Dead letters: input we could not accept, with the reason and the bytes that came.

Contract: ``schemas/json/dead-letter.schema.json``. The original bytes travel base64-encoded
(``raw_b64``) because they need not be UTF-8; ``raw_text`` repeats them as text when they
decode, for people reading the topic. A dead letter must always fit in a Kafka message,
whatever came in: it carries at most the first ``streams.batch.DEAD_LETTER_PAYLOAD_BYTES``
of the message (``truncated`` says so), with the original size and SHA-256 to find the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from schemas.codec import pick


class RejectReason(StrEnum):
    TOO_LARGE = "too_large"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    INVALID_VALUE = "invalid_value"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    TS_IN_FUTURE = "ts_in_future"
    TS_TOO_OLD = "ts_too_old"
    KEY_MISMATCH = "key_mismatch"
    #: A record of one of our own topics whose row ClickHouse refused (the sinks set it aside
    #: so that one bad row cannot stop its table).
    REJECTED_BY_CLICKHOUSE = "rejected_by_clickhouse"
    #: An output of the worker (``source_topic`` names its topic) that the broker could not
    #: take as such (too large for it): this letter, without payload, stands in for it.
    OUTPUT_NOT_PRODUCIBLE = "output_not_producible"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    source_topic: str
    partition: int
    offset: int
    key: str | None
    reason: RejectReason
    detail: str
    raw_b64: str
    raw_text: str | None
    message_ts: int
    #: Size and SHA-256 (hex) of the whole original value; ``truncated``: raw_b64 and
    #: raw_text hold only its beginning.
    raw_size: int = 0
    raw_sha256: str = ""
    truncated: bool = False
    schema_version: int = 2

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> DeadLetter:
        fields = pick(cls, data)
        fields["reason"] = RejectReason(fields["reason"])
        return cls(**fields)
