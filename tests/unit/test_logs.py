from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest
from mode.utils.logging import setup_logging

from promo import logs
from promo.cli import main


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Put the root logger back as it was: the tests reconfigure it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_json_line_carries_the_ids_a_log_call_passed(root_logging: None) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger().handlers[:] = [handler]
    logs.configure("json")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("promo.test").exception(
            "dead letter for %s", "e-7", extra={"event_id": "e-7", "partition": 3}
        )
    line = orjson.loads(stream.getvalue())
    assert line["message"] == "dead letter for e-7"
    assert (line["level"], line["logger"]) == ("ERROR", "promo.test")
    assert (line["event_id"], line["partition"]) == ("e-7", 3)
    assert "ValueError: boom" in line["exception"]
    assert line["ts"].endswith("+00:00")


def test_the_worker_logs_json_through_fausts_own_set_up(
    root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # What Faust's worker does at start with the app's logging_config (mode's set-up).
    config = logs.worker_logging_config("json")
    setup_logging(loglevel="INFO", logfile=None, logging_config=config)
    logging.getLogger("promo.worker").info("partition resumed", extra={"partition": 1})
    line = orjson.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert (line["message"], line["partition"]) == ("partition resumed", 1)
    assert logs.worker_logging_config("text") is None


def test_commands_log_json_when_asked(
    root_logging: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PROMO_LOG_FORMAT", "json")
    logging.getLogger().handlers[:] = []  # so that main's basicConfig installs its handler
    assert main(["settings"]) == 0
    logging.getLogger("promo.test").warning("hello")
    err = capsys.readouterr().err.strip().splitlines()
    assert orjson.loads(err[-1])["message"] == "hello"
