"""Read and write users' state in the Faust table with an explicit changelog partition.

``table[key] = value`` sends the changelog entry to the partition of the *current* event, which
inside a batch is not the partition of every user in it. We write the store and send the
changelog entry ourselves, to the partition the user's events come from, so that a restarted
worker recovers each user's state with the partition that holds their events.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import faust
from faust.types import EventT, FutureMessage, TableT

from agents.expiry import ExpiryIndex
from streams.budget import BudgetLedger
from streams.user_state import UserState

#: (partition, key, value) of one user-state changelog record; None deletes the key
Changelog = tuple[int, bytes, bytes | None]
#: Keys of the table that are not users: a NUL byte never starts a valid user id.
RESERVED_PREFIX = b"\x00"


def ledger_key(partition: int) -> bytes:
    """The table key of a partition's budget ledger, kept (and recovered) with its users."""
    return RESERVED_PREFIX + b"budget:%d" % partition


def end_marker_key(partition: int) -> bytes:
    """The table key of a partition's changelog end marker (``end_markers``)."""
    return RESERVED_PREFIX + b"end:%d" % partition


def end_markers(entries: list[Changelog]) -> list[Changelog]:
    """One record per partition the entries went to, to send once they are acknowledged.

    Sent after the broker took the entries, a marker is a batch of one record: for a broker
    whose "latest" offset is the *last batch's* base offset + 1 (Tansu, see INFRA), that is
    then the true end of the partition, and changelog recovery (which reads up to it) gets
    every entry, though the entries themselves went in batches of many.

    >>> end_markers([(1, b"u1", b"s"), (0, b"u2", b"s"), (1, b"u3", None)])
    [(0, b'\x00end:0', b''), (1, b'\x00end:1', b'')]
    """
    return [(p, end_marker_key(p), b"") for p in sorted({p for p, _, _ in entries})]


def is_user_key(key: bytes) -> bool:
    return not key.startswith(RESERVED_PREFIX)


class UserStateTable(faust.Table[bytes, bytes]):
    """The user-state table, which tells the expiry index each state recovery applies."""

    expiry: ExpiryIndex | None = None

    def apply_changelog_batch(self, batch: Iterable[EventT[bytes]]) -> None:
        super().apply_changelog_batch(batch)
        if self.expiry is not None:
            for event in batch:
                key = cast(bytes, event.key)
                if is_user_key(key):
                    self.expiry.recovered(key.decode(), event.message.value)


def load_ledger(table: TableT[bytes, bytes], partition: int) -> BudgetLedger | None:
    raw = table.get(ledger_key(partition))
    return BudgetLedger.from_bytes(raw) if raw is not None else None


def load_state(
    table: TableT[bytes, bytes], user_id: str, abandon_after_ms: int
) -> UserState | None:
    raw = table.get(user_id.encode())
    return UserState.from_bytes(raw, abandon_after_ms) if raw is not None else None


def save_states(
    table: TableT[bytes, bytes],
    states: dict[str, UserState],
    ledgers: dict[int, BudgetLedger] | None = None,
) -> list[Changelog]:
    """Write the states to the local store now; return their changelog entries to send later.

    The caller sends the entries only once the outputs derived from these states are durable
    (see ``agents.deliveries``): a replayed message is skipped when the recovered
    state already holds it, so its outputs must never be lost behind its state.
    """
    entries: list[Changelog] = []
    for user_id, state in states.items():
        key, value = user_id.encode(), state.to_bytes()
        table.data[key] = value
        entries.append((state.partition, key, value))
    for partition, ledger in (ledgers or {}).items():
        key, value = ledger_key(partition), ledger.to_bytes()
        table.data[key] = value
        entries.append((partition, key, value))
    return entries


def send_changelog(table: TableT[bytes, bytes], entries: list[Changelog]) -> list[FutureMessage]:
    """Queue the entries on Faust's producer; each future resolves when the broker has it."""
    return [table.send_changelog(partition, key, value) for partition, key, value in entries]
