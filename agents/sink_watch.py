"""The sinks' consumer group, watched: a partition it stops delivering must not hold its rows
back in silence.

Seen in make chaos (crashes, Tansu): after SIGKILLed members and a rebalance, the sinks'
group left partitions 2 and 3 of three topics unconsumed, with no error, until the run
ended. The hot path has a watchdog for the same symptom (``agents.clickstream._unstall``);
this one judges the same way (``PartitionProgress``) and is asked to look by the sink loop
between batches, at most every ``WATCH_SECONDS``, never in the middle of a write:

- a partition this consumer holds, with messages waiting and nothing delivered for the stall
  period, is resumed and sought to the offset it expects; still stalled a period later, the
  sink loop replaces its consumer with a new one, which rejoins the group;
- a partition of the sinks' topics that this consumer does not hold, whose group offset has
  not moved for the stall period with messages waiting, is reported as unconsumed (a live
  holder's own watchdog cures it); still unconsumed a period later, the sink loop rejoins
  the group too, so that the group assigns every partition again among its live members.

Time the loop spends writing (a ClickHouse outage retried) does not count towards a stall:
nothing is asked of the consumer meanwhile.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Counter

from agents.expiry import STALL_SECONDS, PartitionProgress

log = logging.getLogger(__name__)

#: Between two looks: each costs a request for the group's offsets (and, for quiet
#: partitions, one for their log ends), which every few seconds is nothing.
WATCH_SECONDS = 5.0


class SinkWatchdog:
    """Progress of the sinks' partitions, held here and elsewhere in the group."""

    def __init__(
        self,
        topics: Iterable[str],
        stalls: Counter,
        stall_seconds: float = STALL_SECONDS,
        every: float = WATCH_SECONDS,
    ) -> None:
        self.topics = sorted(topics)
        self.stalls = stalls
        self.stall_seconds = stall_seconds
        self.every = every
        self.next_look = 0.0
        self.reset()

    def reset(self) -> None:
        """Start every clock again: after a rebalance, or with a new consumer."""
        #: partitions this consumer holds: the last offset delivered
        self.held = PartitionProgress[TopicPartition](stall_seconds=self.stall_seconds)
        #: the others: the group's committed offset, less one
        self.others = PartitionProgress[TopicPartition](stall_seconds=self.stall_seconds)

    def delivered(self, batch: Mapping[TopicPartition, Sequence[Any]], now: float) -> None:
        for tp, records in batch.items():
            if records:
                self.held.seen(tp, records[-1].offset, now)

    def away(self, seconds: float) -> None:
        """The loop spent ``seconds`` writing, not asking the consumer for records."""
        self.held.away(seconds)
        self.others.away(seconds)

    def due(self, now: float) -> bool:
        return now >= self.next_look

    async def look(self, consumer: Any, now: float) -> bool:
        """Cure what can be cured in place; True when the consumer must be replaced."""
        self.next_look = now + self.every
        try:
            return await self._look(consumer, now)
        except KafkaError as exc:  # the broker did not answer: the next look asks again
            log.warning("sinks: the stall watchdog could not look: %r", exc)
            return False

    async def _look(self, consumer: Any, now: float) -> bool:
        held = set(consumer.assignment())
        others = {
            TopicPartition(topic, p)
            for topic in self.topics
            for p in consumer.partitions_for_topic(topic) or ()
        } - held
        group = await group_offsets(consumer, held | others)  # one request for both
        for tp in others & group.keys():
            self.others.seen(tp, group[tp] - 1, now)
        quiet_held, quiet_others = self.held.quiet(held, now), self.others.quiet(others, now)
        if not quiet_held and not quiet_others:
            return False
        ends = await consumer.end_offsets([*quiet_held, *quiet_others])
        committed = {tp: group[tp] for tp in quiet_held if tp in group}
        rejoin = False
        for tp, (verdict, expected) in self.held.judge(quiet_held, ends, committed, now).items():
            if verdict == "idle":
                continue
            state = (
                f"{tp.topic}[{tp.partition}]: the sinks expect offset {expected}, the log ends "
                f"at {ends.get(tp)}, nothing delivered for {self.stall_seconds:.0f} s "
                f"(paused={tp in consumer.paused()})"
            )
            if verdict == "stop":
                log.error(
                    "sinks: %s, still stalled after a resume; a new consumer rejoins",
                    state,
                    extra=_where(tp, "rejoin"),
                )
                rejoin = True
                continue
            log.error("sinks: stalled partition %s; resuming it", state, extra=_where(tp, "resume"))
            self.stalls.labels("resume").inc()
            consumer.resume(tp)
            consumer.seek(tp, expected)  # drops whatever the fetcher holds for it
        for tp, (verdict, expected) in self.others.judge(quiet_others, ends, group, now).items():
            if verdict == "idle":
                continue
            state = (
                f"{tp.topic}[{tp.partition}]: the group's offset stays at {expected}, the log "
                f"ends at {ends.get(tp)}, for {self.stall_seconds:.0f} s, and this worker's "
                f"sinks hold {_partitions(held)}: no live member consumes it, or its holder "
                "is stuck (a ClickHouse outage holds every sink back)"
            )
            if verdict == "stop":
                log.error(
                    "sinks: partition still unconsumed %s; rejoining the group",
                    state,
                    extra=_where(tp, "rejoin"),
                )
                rejoin = True
                continue
            log.error("sinks: unconsumed partition %s", state, extra=_where(tp, "unconsumed"))
            self.stalls.labels("unconsumed").inc()
        if rejoin:
            self.stalls.labels("rejoin").inc()
        return rejoin


async def group_offsets(consumer: Any, tps: set[TopicPartition]) -> dict[TopicPartition, int]:
    """The group's committed offsets of ``tps`` (those with one), in one request.

    (aiokafka's public ``committed`` asks for one partition per request: dozens every look.)
    """
    if not tps:
        return {}
    offsets = await consumer._coordinator.fetch_committed_offsets(tps)
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


class AssignmentLog(ConsumerRebalanceListener):  # type: ignore[misc]
    """Say which partitions the sinks' consumer holds after each rebalance, and start the
    watchdog's clocks again: a partition no live member consumes (seen in make chaos after
    SIGKILLs, cause unknown) is then found in the workers' logs."""

    def __init__(self, rebalanced: Callable[[], None] = lambda: None) -> None:
        self.rebalanced = rebalanced

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        log.info("sinks: partitions revoked: %s", _partitions(revoked))

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        log.info("sinks: partitions assigned: %s", _partitions(assigned))
        self.rebalanced()


def _partitions(tps: Iterable[TopicPartition]) -> str:
    by_topic: dict[str, list[int]] = defaultdict(list)
    for tp in tps:
        by_topic[tp.topic].append(tp.partition)
    return "; ".join(f"{t} {sorted(p)}" for t, p in sorted(by_topic.items())) or "none"


def _where(tp: TopicPartition, action: str) -> dict[str, object]:
    """The fields a JSON log line carries for a stalled partition (``promo.logs``)."""
    return {"topic": tp.topic, "partition": tp.partition, "action": action}
