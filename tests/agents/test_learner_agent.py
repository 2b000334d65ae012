"""The learner agent through Faust's test context: what it publishes, and when it lets go of
its training examples.

The models topic it reads on taking over is played by a list of snapshots (no broker): the
harness replaces ``agents.learner.published_snapshots``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from agents import follow, learner
from agents.app import create_app
from schemas.codec import encode
from schemas.training import TrainingExample
from streams.feature_vector import FEATURE_NAMES
from streams.learning import learn_batch
from streams.models import ModelSnapshot
from tests.agents.conftest import AgentHarness, agent_settings


def examples(n: int, actions: tuple[str, ...], seed: int = 3) -> list[bytes]:
    rng = random.Random(seed)
    return [
        encode(
            TrainingExample(
                f"d-{i}",
                1_700_000_000_000 + i,
                tuple(rng.uniform(0, 5) for _ in FEATURE_NAMES),
                rng.choice(actions),
                rng.randint(0, 1),
                0,
            )
        )
        for i in range(n)
    ]


@pytest.fixture
def learner_agent(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``async with learner_agent(published, **settings) as h``: the learner, taking over a
    models topic that holds the snapshots ``published``."""

    @asynccontextmanager
    async def running(
        published: list[ModelSnapshot], **overrides: Any
    ) -> AsyncIterator[AgentHarness]:
        async def on_the_topic(*args: object) -> AsyncIterator[ModelSnapshot]:
            for snapshot in published:
                yield ModelSnapshot.from_bytes(snapshot.to_bytes())

        monkeypatch.setattr(learner, "published_snapshots", on_the_topic)
        promo = create_app(agent_settings(**overrides))
        async with promo.app.agents["promo.learner"].test_context() as wrapper:
            harness = AgentHarness(promo, wrapper)
            promo.outputs = harness
            yield harness

    return running


def published(h: AgentHarness) -> list[ModelSnapshot]:
    return [ModelSnapshot.from_bytes(s.value) for s in h.on(h.settings.topic_models)]


async def put_examples(h: AgentHarness, values: list[bytes]) -> list[Any]:
    return [await h.agent.put(v, key=b"d", partition=0, wait=False) for v in values]


async def test_a_learner_taking_over_continues_from_the_published_models_and_learns_labels_once(
    learner_agent: Any,
) -> None:
    settings = agent_settings()
    actions = create_app(settings).engine.snapshot.actions
    labels = examples(10, actions)
    # The previous learner published v7 after the first 5 labels, then died before its
    # consumer committed them: they come again. This worker's follower has not read v7 yet.
    before = ModelSnapshot.initial(actions, settings.n_segments, settings.model_seed)
    learn_batch(before, list(enumerate(labels[:5])))
    before.version = 7
    async with learner_agent([before], model_publish_every=10, model_publish_seconds=60) as h:
        assert h.promo.engine.snapshot.version == 0
        await put_examples(h, labels)
        await h.wait_until(lambda h: len(published(h)) == 1)
    [after] = published(h)
    assert (after.version, after.trained_to, after.examples_seen) == (8, 9, 10)
    once = ModelSnapshot.initial(actions, settings.n_segments, settings.model_seed)
    learn_batch(once, list(enumerate(labels)))
    assert after.response.to_state() == once.response.to_state()  # not just the count


async def test_a_learners_examples_are_acknowledged_only_once_their_snapshot_is_delivered(
    learner_agent: Any,
) -> None:
    # Faust commits the offsets of acknowledged messages, and its own flush before a commit
    # gives up after 0.1 s without a send: were the examples acknowledged with their snapshot
    # still buffered, a crash after the commit would lose those labels for good.
    async with learner_agent([], model_publish_every=1, model_publish_seconds=60) as h:
        h.hold = True  # a slow broker
        actions = h.promo.engine.snapshot.actions
        [event] = await put_examples(h, examples(1, actions))
        await h.wait_until(lambda h: len(published(h)) == 1)  # sent, not yet acknowledged
        for _ in range(100):
            await asyncio.sleep(0)
        assert not event.message.acked
        h.release()
        await h.wait_until(lambda h: event.message.acked)


class Follower:
    """A consumer of the models topic: fails at start, or hands out ``snapshots``."""

    def __init__(self, snapshots: list[ModelSnapshot] | Exception) -> None:
        self.snapshots, self.stopped = snapshots, False

    async def start(self) -> None:
        if isinstance(self.snapshots, Exception):
            raise self.snapshots

    def assign(self, partitions: list[Any]) -> None: ...

    async def seek_to_beginning(self, *partitions: Any) -> None: ...

    async def __aiter__(self) -> AsyncIterator[Any]:
        assert isinstance(self.snapshots, list)
        for offset, snapshot in enumerate(self.snapshots):
            yield SimpleNamespace(value=snapshot.to_bytes(), offset=offset)

    async def stop(self) -> None:
        self.stopped = True


def _snapshot(version: int) -> ModelSnapshot:
    snapshot = ModelSnapshot.initial(("none", "pct10"), n_segments=2, seed=1)
    snapshot.number_and_name(version)
    return snapshot


async def test_a_model_follower_that_loses_the_broker_reads_the_models_topic_again() -> None:
    v3 = _snapshot(3)
    followers = iter(
        [Follower(KafkaConnectionError()), Follower(KafkaConnectionError()), Follower([v3])]
    )
    used: list[Follower] = []
    waits: list[float] = []
    adopted: list[int] = []

    def consumer(settings: Any) -> Follower:
        used.append(next(followers))
        return used[-1]

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    await learner.follow_published_models(
        agent_settings(), v3.layout, lambda s: adopted.append(s.version), consumer, sleep
    )
    # Before: the error ended the app task, and Faust stopped the whole worker with it.
    assert adopted == [3]
    assert waits == [follow.FOLLOW_RETRY_SECONDS, 2 * follow.FOLLOW_RETRY_SECONDS]
    assert all(f.stopped for f in used)


async def test_a_model_follower_stops_the_worker_on_an_error_that_is_not_the_brokers() -> None:
    def consumer(settings: Any) -> Follower:
        return Follower(TypeError("a bug"))

    with pytest.raises(TypeError, match="a bug"):
        await learner.follow_published_models(
            agent_settings(), _snapshot(1).layout, lambda s: None, consumer
        )
