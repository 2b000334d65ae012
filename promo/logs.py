"""Log lines for people or for machines: ``PROMO_LOG_FORMAT`` (``text`` or ``json``).

With ``json`` every line on stderr (``promo`` commands, and the worker through Faust's logging
set-up) is one JSON object: ``ts`` (UTC, ISO 8601), ``level``, ``logger``,
``message``, ``pid``, the exception's traceback as ``exception`` if any, and every field a
log call passed in ``extra`` (the ids that matter: ``topic``, ``partition``, ``event_id``,
``reason`` ...), so a log pipeline can filter on them without parsing messages.

>>> record = logging.LogRecord("promo", logging.WARNING, "x.py", 1, "dead letter: %s", ("bad",),
...                            None)
>>> record.event_id = "e-1"
>>> line = orjson.loads(JsonFormatter().format(record))
>>> line["level"], line["message"], line["event_id"]
('WARNING', 'dead letter: bad', 'e-1')
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

#: Attributes every LogRecord has: anything else on a record came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}
#: Third-party clients narrate every connection and offset reset at INFO: hundreds of lines
#: before a newcomer's report. Their warnings and errors still show.
CHATTY_LOGGERS = ("kafka", "aiokafka")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the record's ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        entry.update(
            (key, value)
            for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_") and key not in entry
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


def configure(log_format: str) -> None:
    """Set the format of the ``promo`` command's root handlers (after ``basicConfig``)."""
    if log_format == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())


def quiet_chatty_clients() -> None:
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def worker_logging_config(log_format: str) -> dict[str, Any] | None:
    """Faust's logging ``dictConfig`` for the worker: JSON formatters under the names of
    Faust's own, merged into its set-up (its handlers and levels stay); None (Faust's
    default) for text."""
    if log_format != "json":
        return None
    json_formatter = {"()": f"{__name__}.JsonFormatter"}
    return {
        "version": 1,
        "merge": True,
        "formatters": {"default": json_formatter, "colored": json_formatter},
    }
