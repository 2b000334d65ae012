"""Partitions taken over resume at the committed offset, never after it.

``make chaos`` (crashes) lost events that no worker ever processed: a worker that kept a
partition through a rebalance had it sought back to the committed offset (19,873), yet its
first batch after the rebalance began at 20,037 and Faust committed over the 164 messages in
between as a "gap" (messages fetched before the rebalance, dropped from the stream, then taken
for already read). Their users' states never saw those events. The Faust internals behind it
are not pinned down; this guard checks the outcome instead: after an assignment, a
partition's first messages must start at or before its committed offset. Messages after a
gap are not processed and never acknowledged (so never committed), the partition is sought
back to the committed offset, and what comes again is processed in order; messages the
states already hold are skipped by their applied offsets as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class ResumeGuard:
    #: partition -> offset its next message must not exceed, until one does
    expected: dict[int, int] = field(default_factory=dict)

    def assigned(self, committed: dict[int, int]) -> None:
        """Partitions (re)assigned, with their committed offsets (those without one are not
        checked: the consumer starts them at the beginning)."""
        self.expected = dict(committed)

    def forget(self, partition: int) -> None:
        """A partition whose committed offset is older than its log's start: the gap is the
        broker's retention, nothing to read again."""
        self.expected.pop(partition, None)

    def check(self, batch: Sequence[tuple[int, int]]) -> tuple[list[bool], set[int]]:
        """For a batch's (partition, offset) in order: which messages may be processed, and
        the partitions to seek back to ``expected`` (a gap, and nothing of it in this
        batch)."""
        keep: list[bool] = []
        gap: set[int] = set()
        for partition, offset in batch:
            limit = self.expected.get(partition)
            if limit is None:
                keep.append(True)
            elif offset <= limit:
                del self.expected[partition]  # resumed in order: nothing more to check
                gap.discard(partition)
                keep.append(True)
            else:
                gap.add(partition)
                keep.append(False)
        return keep, gap
