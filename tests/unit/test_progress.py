from __future__ import annotations

import io

from promo.progress import bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_sees_count_rate_and_time_left_and_a_log_sees_nothing() -> None:
    terminal, log = Terminal(), io.StringIO()
    for stream in (terminal, log):
        with bar(total=10, unit="events", desc="replayed", file=stream) as replayed:
            replayed.update(4)
            replayed.refresh()
    shown = terminal.getvalue()
    assert "replayed" in shown and "4/10" in shown and "events/s" in shown and "<" in shown
    assert log.getvalue() == ""
