"""Read and write users' state in the Faust table with an explicit changelog partition.

``table[key] = value`` sends the changelog entry to the partition of the *current* event, which
inside a batch is not the partition of every user in it. We write the store and send the
changelog entry ourselves, to the partition the user's events come from, so that a restarted
worker recovers each user's state with the partition that holds their events.
"""

from __future__ import annotations

from faust.types import TableT

from streams.user_state import UserState


def load_state(
    table: TableT[bytes, bytes], user_id: str, abandon_after_ms: int
) -> UserState | None:
    raw = table.get(user_id.encode())
    return UserState.from_bytes(raw, abandon_after_ms) if raw is not None else None


def save_state(table: TableT[bytes, bytes], user_id: str, state: UserState) -> None:
    key, value = user_id.encode(), state.to_bytes()
    table.data[key] = value
    table.send_changelog(state.partition, key, value)
