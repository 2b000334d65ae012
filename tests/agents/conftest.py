"""Drive the real agents through Faust's test context: no broker, no ClickHouse.

``create_app`` builds the worker's app from settings whose broker URL points at a port nothing
listens on: the test context never connects. A message is put on the agent's test channel as
raw bytes with its key, partition, offset and Kafka timestamp, exactly as the consumer would
deliver it, and runs through the agent's own ``stream.take_events`` batching.

The agent's outputs (offers, decisions, dead letters, outcomes, training examples) go through
``promo.outputs``, which the harness replaces by a recorder; the changelog goes through Faust's
producer, whose buffer (drained only by a running producer) the harness reads. Either way
every record is observed on its way out, topic, key and bytes as they would reach the broker.
The harness also plays the broker's acknowledgement: each record is delivered at once, or
held (a slow broker, until ``release``), or refused (``refuse``), as a test asks.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import orjson
import pytest

from agents.app import Promo, create_app
from promo.settings import Settings
from schemas import JSON_SCHEMA_DIR

#: A port nothing listens on: proves the test context never talks to a broker.
NO_BROKER = "kafka://127.0.0.1:9"
HOUR_MS = 3_600_000
MINUTE_MS = 60_000


def schema_validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((JSON_SCHEMA_DIR / name).read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


@dataclass(frozen=True)
class Sent:
    """One record the agent handed to the producer."""

    topic: str
    key: bytes | None
    value: bytes
    partition: int | None

    def json(self) -> Any:
        return orjson.loads(self.value)


@dataclass
class AgentHarness:
    promo: Promo
    agent: Any  # faust's AgentTestWrapper
    sent: list[Sent] = field(default_factory=list)
    #: Deliveries kept pending while ``hold`` is set (a slow broker), until ``release()``.
    hold: bool = False
    held: list[Any] = field(default_factory=list)
    #: Topic -> the error the broker answers every send to it with.
    refuse: dict[str, BaseException] = field(default_factory=dict)
    #: Partition -> its next offset: a log numbers each partition on its own (Faust's test
    #: channel numbers them all in one count, which the agent would take for holes).
    offsets: dict[int, int] = field(default_factory=dict)
    #: The test channel's count as put last left it: a test that sets it gives the next offset.
    numbered: int = 0

    @property
    def settings(self) -> Settings:
        return self.promo.settings

    async def put(
        self,
        value: bytes | dict[str, Any],
        *,
        key: bytes | None,
        partition: int = 0,
        timestamp_ms: int | None = None,
    ) -> int:
        """Deliver one clickstream message; returns its offset."""
        raw = value if isinstance(value, bytes) else orjson.dumps(value)
        if self.agent.sent_offset != self.numbered:  # set by the test
            self.offsets[partition] = self.agent.sent_offset
        offset = self.offsets.get(partition, 0)
        self.agent.sent_offset = offset  # the test channel numbers the message with it
        # wait=False: put(wait=True) returns when the message enters the stream, not when the
        # batch that holds it is processed; the harness waits on the agent's output instead.
        event = await self.agent.put(
            raw,
            key=key,
            partition=partition,
            timestamp=(timestamp_ms / 1000) if timestamp_ms is not None else None,
            wait=False,
        )
        event.message.incref()  # one reference per channel, as Faust's conductor counts them
        self.offsets[partition] = self.numbered = offset + 1
        return offset

    def release(self) -> None:
        """The held deliveries arrive."""
        self.hold = False
        for future in self.held:
            future.set_result(None)
        self.held.clear()

    def fail(self, exc: BaseException) -> None:
        """The held deliveries fail with ``exc``."""
        self.hold = False
        for future in self.held:
            future.set_exception(exc)
        self.held.clear()

    max_request_size = 1_048_576

    async def send(self, topic: str, key: bytes | None, value: bytes) -> Awaitable[object]:
        """``Outputs.send``: the agent's outputs come here instead of to a producer."""
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._deliver(future, Sent(topic, key, value, None))
        return future

    def _deliver(self, future: Any, sent: Sent) -> None:
        if sent.topic in self.refuse:
            future.set_exception(self.refuse[sent.topic])
        elif self.hold:
            self.held.append(future)
        else:
            future.set_result(None)
        self.sent.append(sent)

    def _drain(self) -> None:
        pending: asyncio.Queue[Any] = self.promo.app.producer.buffer.pending
        while not pending.empty():
            future = pending.get_nowait()
            m = future.message
            self._deliver(future, Sent(m.channel.get_topic_name(), m.key, m.value, m.partition))

    async def wait_until(self, done: Callable[[AgentHarness], bool], timeout: float = 10.0) -> None:
        """Wait until ``done(self)`` holds for what the agent sent so far, or fail."""
        deadline = time.monotonic() + timeout
        while True:
            if self.agent._crash_reason is not None:
                raise self.agent._crash_reason
            self._drain()
            if done(self):
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"agent output still incomplete after {timeout} s: "
                    f"{[(s.topic, s.key) for s in self.sent]}"
                )
            await asyncio.sleep(0.01)

    async def settle(self, quiet: float = 0.1) -> None:
        """Let any further output appear (for asserting that something was *not* sent)."""
        await asyncio.sleep(quiet)
        await self.wait_until(lambda h: True)

    def on(self, topic: str) -> list[Sent]:
        return [s for s in self.sent if s.topic == topic]

    @property
    def decisions(self) -> list[dict[str, Any]]:
        return [s.json() for s in self.on(self.settings.topic_decisions)]

    @property
    def offers(self) -> list[Sent]:
        return self.on(self.settings.topic_offers)

    @property
    def dead_letters(self) -> list[dict[str, Any]]:
        return [s.json() for s in self.on(self.settings.topic_dead_letters)]

    @property
    def changelog(self) -> list[Sent]:
        return self.on(self.promo.user_state.changelog_topic.get_topic_name())


def agent_settings(**overrides: Any) -> Settings:
    """Settings independent of the caller's PROMO_* environment for what the tests rely on."""
    values: dict[str, Any] = dict(
        broker_url=NO_BROKER,
        clickhouse_url="clickhouse://default@127.0.0.1:9/promo_agent_tests",
        app_id="promo-agent-test",
        topic_clickstream="t-clickstream",
        topic_offers="t-offers",
        topic_dead_letters="t-dead-letters",
        topic_decisions="t-decisions",
        topic_outcomes="t-outcomes",
        topic_training="t-training",
        topic_models="t-models",
        topic_suppressions="t-suppressions",
        topic_partitions=8,
        batch_size=500,
        batch_seconds=0.02,
        control_share=0.0,
        holdout_salt="promo-holdout-1",
        explore_share=0.0,
        decision_triggers="view,add_to_cart,cart_return",
        decision_cooldown_minutes=60.0,
        max_offers_per_day=1,
        max_offers_per_week=3,
        max_future_skew_seconds=300,
        decision_lateness_minutes=10,
        cart_abandon_minutes=30,
        policy_version="test-v2",
        offer_catalogue=None,
        changelog_end_markers=False,  # the local profile's Tansu workaround: a test asks for it
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def clickstream_agent() -> Callable[..., Any]:
    """``async with clickstream_agent(**settings) as h``: the clickstream agent under test."""

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def running(**overrides: Any) -> AsyncIterator[AgentHarness]:
        promo = create_app(agent_settings(**overrides))
        agent = promo.app.agents["promo.clickstream"]
        async with agent.test_context() as wrapper:
            # No producer runs here: the harness takes the outputs in place of the output
            # producer, and the changelog out of Faust's producer buffer, and acknowledges them.
            harness = AgentHarness(promo, wrapper)
            promo.outputs = harness
            yield harness

    return running
