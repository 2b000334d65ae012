"""Which users have attribution windows to close, for users who do not come back.

A user's own next event closes their expired windows; a user who never returns needs the
sweep. The index is in memory and small (one entry per user with an open decision). After a
restart it is rebuilt from the user-state table on the first sweep.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.user_state import UserState


@dataclass
class ExpiryIndex:
    #: user id -> earliest window end among their open decisions
    due_at: dict[str, int] = field(default_factory=dict)
    #: Latest event time this worker has seen: event time, not the wall clock, closes windows.
    watermark: int = -1
    needs_rebuild: bool = True

    def track(self, user_id: str, state: UserState) -> None:
        if state.open_decisions:
            self.due_at[user_id] = min(d.expires_at for d in state.open_decisions)
        else:
            self.due_at.pop(user_id, None)

    def due(self) -> list[str]:
        """Users whose earliest window ended before the watermark."""
        return [u for u, t in self.due_at.items() if t <= self.watermark]
