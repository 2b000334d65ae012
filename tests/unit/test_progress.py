from __future__ import annotations

import io
import json
import sys
from typing import Any

import pytest
from tqdm import tqdm

from promo import progress
from promo.cli import main
from promo.progress import bar, stages


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


def test_evaluate_counts_simulated_hours_on_stderr_and_its_json_stays_one_object(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    terminal, bars, make_bar = Terminal(), [], progress.bar

    def kept(**options: Any) -> tqdm[Any]:
        bars.append(make_bar(**options))
        return bars[-1]

    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(progress, "bar", kept)
    argv = ["evaluate", "--users", "60", "--days", "1", "--warmup-days", "1", "--seed", "3"]
    assert main([*argv, "--policies", "none,random", "--no-sql", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)  # one object, nothing else on stdout
    assert set(result["policies"]) == {"none", "random"}
    assert "simulated" in terminal.getvalue() and "h/s" in terminal.getvalue()
    # Every hour the worker process played reached the bar (the random policy's 48).
    [simulated] = bars
    assert simulated.n == simulated.total == 48


def test_stages_count_on_a_terminal_and_their_lines_stay_everywhere() -> None:
    terminal, log = Terminal(), io.StringIO()
    for stream in (terminal, log):
        with stages(total=3, desc="bench", file=stream) as start:
            start("bench: transport ceiling")
            start("bench: framework ceiling")
    assert log.getvalue() == "bench: transport ceiling\nbench: framework ceiling\n"
    shown = terminal.getvalue()
    assert "bench: framework ceiling\n" in shown and "1/3" in shown and "stage" in shown
