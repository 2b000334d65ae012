"""Cost per stage of the hot path, measured in process on the bench's own traffic.

A worker's CPU time says how much an event costs, not where. Here the same messages go
through what a worker does with a batch, with no Faust, Kafka or ClickHouse: validation and
the engine (``streams.batch.process_batch``), each user's state encoded once per batch,
every output encoded, the learner's work on the labels (decode, learn, a snapshot published
and read back every ``model_publish_every`` labels) and the sinks' rows. Each stage's
functions are wrapped with ``perf_counter`` accumulators; a stage's time excludes the
wrapped functions it calls (a stack of open timers), so the stages add up to the total. The
wrappers cost time of their own: a second, plain pass over the same messages gives the
uninstrumented cost to compare with.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import ConsumerRecord

import streams.batch
import streams.engine
from agents.app import engine_config, initial_snapshot
from agents.sinks import Sink, sinks
from benchmarks.figures import us_per_event
from promo.settings import Settings
from schemas.codec import encode
from schemas.training import decode_example
from streams.batch import RawMessage
from streams.engine import DecisionEngine, EngineOutput
from streams.features import SlidingWindowFeatures
from streams.models import ModelSnapshot, Segmenter
from streams.uplift import UpliftModel
from streams.user_state import UserState

F = TypeVar("F", bound=Callable[..., Any])

#: Stages in the order an event meets them. ``engine_other`` is process_batch's own work
#: outside the other stages: the replay check, ids, building decisions and offers.
STAGES = (
    "validation",
    "state_decode",
    "features",
    "models",
    "policy",
    "attribution",
    "engine_other",
    "state_encode",
    "produce_encode",
    "learning",
    "sink_rows",
)

#: (owner, attribute, stage): the functions timed, patched where the hot path looks them up.
TIMED: tuple[tuple[object, str, str], ...] = (
    (streams.batch, "validate_event", "validation"),
    (UserState, "from_bytes", "state_decode"),
    (UserState, "to_bytes", "state_encode"),
    (SlidingWindowFeatures, "update", "features"),
    (streams.engine, "feature_vector", "features"),
    (UpliftModel, "order_value", "models"),
    (Segmenter, "segment", "models"),
    (UpliftModel, "belief", "models"),
    (UpliftModel, "redemption_rate", "models"),
    (streams.engine, "choose_offer", "policy"),
    (streams.engine, "ineligibility", "policy"),
    (streams.engine, "in_control_group", "policy"),
    (streams.engine, "in_explore_cohort", "policy"),
    (streams.engine, "unit_hash", "policy"),
    (streams.engine, "attribute_event", "attribution"),
    (streams.engine, "close_expired", "attribution"),
)

METHOD = (
    "in process, one core, on the bench's backlog as the worker read it (same partitions, "
    "offsets, batches of PROMO_BATCH_SIZE): process_batch, states encoded once per batch, "
    "outputs encoded, the learner's decode/learn/publish, the sinks' rows (agents.sinks, "
    "the events re-validated); each stage's functions wrapped with perf_counter "
    "accumulators (one thread's wall time: compare total_plain_us_per_event with "
    "total_plain_cpu_us_per_event), a stage's time excluding the wrapped functions it "
    "calls; engine_other is process_batch outside the other stages. No Faust, "
    "Kafka or ClickHouse: the sends, commits and inserts are what the worker's CPU per "
    "event adds to this total."
)


class StageClock:
    """Exclusive time per stage: an open timer's time is not counted again by the timer
    around it.

    >>> clock = StageClock()
    >>> inner = clock.wrap("inner", lambda: time.sleep(0.02))
    >>> with clock.stage("outer"):
    ...     inner()
    >>> clock.seconds["inner"] > 0.015 > clock.seconds["outer"], dict(clock.calls)
    (True, {'inner': 1, 'outer': 1})
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self._open: list[float] = []  # time spent in timers nested in each open one

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._open.append(0.0)
        start = time.perf_counter()
        try:
            yield
        finally:
            self._close(name, time.perf_counter() - start)

    def wrap(self, name: str, fn: F) -> F:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._open.append(0.0)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._close(name, time.perf_counter() - start)

        return timed  # type: ignore[return-value]

    def _close(self, name: str, elapsed: float) -> None:
        nested = self._open.pop()
        self.seconds[name] += elapsed - nested
        self.calls[name] += 1
        if self._open:
            self._open[-1] += elapsed


@contextmanager
def timed_functions(clock: StageClock) -> Iterator[None]:
    """Every function of ``TIMED`` wrapped by ``clock`` while inside; restored after."""
    with ExitStack() as restore:
        for owner, attribute, stage in TIMED:
            raw = vars(owner)[attribute]
            if isinstance(raw, classmethod):
                wrapped: object = classmethod(clock.wrap(stage, raw.__func__))
            else:
                wrapped = clock.wrap(stage, raw)
            setattr(owner, attribute, wrapped)
            restore.callback(setattr, owner, attribute, raw)
        yield


@dataclass(frozen=True)
class StageFigures:
    events: int
    decisions: int
    #: stage -> microseconds per event (all events, whether or not the stage ran for them)
    us_per_event: dict[str, float]
    #: stage -> calls of its timed functions or blocks
    calls: dict[str, int]
    instrumented_us_per_event: float
    plain_us_per_event: float
    plain_cpu_us_per_event: float

    def to_json(self) -> dict[str, Any]:
        return {
            "method": METHOD,
            "events": self.events,
            "decisions": self.decisions,
            "us_per_event": self.us_per_event,
            "calls": self.calls,
            "total_instrumented_us_per_event": self.instrumented_us_per_event,
            "total_plain_us_per_event": self.plain_us_per_event,
            "total_plain_cpu_us_per_event": self.plain_cpu_us_per_event,
        }


def measure_stages(settings: Settings, messages: Sequence[RawMessage]) -> StageFigures:
    """A plain pass, then an instrumented one, each from empty state and initial models."""
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    replay(settings, messages, StageClock())
    plain_wall = time.perf_counter() - wall_start
    plain_cpu = time.process_time() - cpu_start
    clock = StageClock()
    start = time.perf_counter()
    with timed_functions(clock):
        decisions = replay(settings, messages, clock)
    instrumented = time.perf_counter() - start
    n = len(messages)
    return StageFigures(
        events=n,
        decisions=decisions,
        us_per_event={s: us_per_event(clock.seconds.get(s, 0.0), n) for s in STAGES},
        calls={s: clock.calls.get(s, 0) for s in STAGES},
        instrumented_us_per_event=us_per_event(instrumented, n),
        plain_us_per_event=us_per_event(plain_wall, n),
        plain_cpu_us_per_event=us_per_event(plain_cpu, n),
    )


def replay(
    settings: Settings,
    messages: Sequence[RawMessage],
    clock: StageClock,
    table: dict[bytes, bytes] | None = None,
) -> int:
    """What a worker does with ``messages``, batch by batch, its users' states in ``table``;
    returns the decisions taken."""
    config = engine_config(settings)
    engine = DecisionEngine(config, initial_snapshot(settings, config))
    learner = Learner(engine, settings.model_publish_every)
    sink_rows = SinkRows(settings)
    table = {} if table is None else table
    decisions = 0

    def load(user_id: str) -> UserState | None:
        raw = table.get(user_id.encode())
        return UserState.from_bytes(raw, config.abandon_after_ms) if raw is not None else None

    for i in range(0, len(messages), settings.batch_size):
        batch = messages[i : i + settings.batch_size]
        with clock.stage("engine_other"):
            result = streams.batch.process_batch(
                engine,
                batch,
                load,
                max_bytes=settings.max_message_bytes,
                max_future_skew_ms=settings.max_future_skew_seconds * 1000,
                now_ms=int(time.time() * 1000),
                max_age_ms=settings.max_event_age_days * 86_400_000,
            )
        for user_id, state in result.states.items():
            table[user_id.encode()] = state.to_bytes()
        out = result.output
        with clock.stage("produce_encode"):
            encoded = {kind: [encode(r) for r in records] for kind, records in outputs(out)}
            encoded["dead_letters"] = [encode(d) for d in result.dead_letters]
        with clock.stage("learning"):
            learner.learn(encoded["training"])
        with clock.stage("sink_rows"):
            sink_rows.rows(batch, encoded)
        decisions += len(out.decisions)
    return decisions


def outputs(out: EngineOutput) -> list[tuple[str, Sequence[object]]]:
    return [
        ("offers", out.offers),
        ("decisions", out.decisions),
        ("outcomes", out.outcomes),
        ("training", [*out.training, *out.searches]),
        ("suppressions", out.suppressions),
    ]


class Learner:
    """The learner's work (agents.learner) and every worker's model follower, in process:
    decode each label, learn it, and every ``every`` labels publish a snapshot that the
    engine reads back."""

    def __init__(self, engine: DecisionEngine, every: int) -> None:
        self.engine, self.every, self.pending = engine, every, 0

    def learn(self, examples: Sequence[bytes]) -> None:
        snapshot = self.engine.snapshot
        for value in examples:
            snapshot.learn_example(decode_example(value))
            self.pending += 1
            if self.pending >= self.every:
                snapshot.number_and_name(snapshot.version + 1)
                snapshot = ModelSnapshot.from_bytes(snapshot.to_bytes(), snapshot.layout)
                self.engine.snapshot, self.pending = snapshot, 0


class SinkRows:
    """The sinks' rows (agents.sinks) of a batch's events and of its encoded outputs."""

    def __init__(self, settings: Settings) -> None:
        by_topic = {sink.topic: sink for sink in sinks(settings)}
        self.events = by_topic[settings.topic_clickstream]
        self.outputs: dict[str, Sink] = {
            "decisions": by_topic[settings.topic_decisions],
            "outcomes": by_topic[settings.topic_outcomes],
            "suppressions": by_topic[settings.topic_suppressions],
            "dead_letters": by_topic[settings.topic_dead_letters],
        }

    def rows(self, batch: Sequence[RawMessage], encoded: dict[str, list[bytes]]) -> None:
        for m in batch:
            self.events.to_row(
                _record(m.topic, m.partition, m.offset, m.timestamp_ms, m.key, m.value)
            )
        for kind, sink in self.outputs.items():
            for value in encoded[kind]:
                sink.to_row(_record(sink.topic, 0, 0, 0, None, value))


def _record(
    topic: str, partition: int, offset: int, timestamp: int, key: bytes | None, value: bytes
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic, partition, offset, timestamp, 0, key, value, None, len(key or b""), len(value), ()
    )
