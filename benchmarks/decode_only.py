"""The framework ceiling: a Faust worker whose one agent only decodes each clickstream event
and acknowledges it, with the app options and batches of ``promo worker``
(``agents.app.faust_app``, ``PROMO_BATCH_SIZE`` / ``PROMO_BATCH_SECONDS``).

``python -m benchmarks.decode_only --events N --done-file PATH`` (settings from ``PROMO_*``):
once N events are decoded it writes ``{"events", "first_at", "done_at"}`` (wall-clock
seconds) to PATH, then runs on until SIGTERM like a worker.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

import orjson
from faust.types import StreamT

from agents.app import faust_app, run_worker
from agents.topics import Topics
from promo.settings import load_settings


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.decode_only", description=__doc__)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--done-file", type=Path, required=True)
    args = parser.parse_args(argv)
    settings = load_settings()
    app = faust_app(settings)
    clickstream = Topics.declare(app, settings).clickstream
    expected, done_file = args.events, args.done_file

    @app.agent(clickstream, name="bench.decode_only")
    async def decode_only(stream: StreamT[bytes]) -> None:
        seen, first_at = 0, 0.0
        batches = stream.take_events(settings.batch_size, within=settings.batch_seconds)  # type: ignore[attr-defined]
        async for events in batches:
            first_at = first_at or time.time()
            for event in events:
                with suppress(
                    orjson.JSONDecodeError
                ):  # counted all the same (the backlog has none)
                    orjson.loads(event.message.value or b"")
            seen += len(events)
            if seen >= expected and not done_file.exists():
                report = {"events": seen, "first_at": first_at, "done_at": time.time()}
                done_file.write_bytes(orjson.dumps(report))

    run_worker(app, settings)


if __name__ == "__main__":
    main()
