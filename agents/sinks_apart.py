"""``promo sinks``: the ClickHouse sinks as a process of their own.

With ``PROMO_SINKS_IN_WORKER=false`` the workers only decide, and one or more of these
processes write every topic to ClickHouse: the same sinks, consumer group (``<app id>-sinks``),
batching, back-off and watchdog as inside a worker. A worker's one Python thread then spends
itself on the hot path alone, and the sinks get cores of their own; several sinks processes
share the partitions as workers do.

Metrics (the ``promo_sink_*`` family) are served in Prometheus' text format on
``PROMO_WORKER_PORT`` at ``PROMO_WORKER_BIND``. SIGTERM or SIGINT stops the consumer, leaving
the group; a batch not yet committed is written again by the partitions' next holder.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import start_http_server

from agents.metrics import SinkMetrics
from agents.sinks import sink_forever
from promo.settings import Settings

log = logging.getLogger(__name__)


def run(s: Settings) -> int:
    """Sink until signalled; 0 then. A bad setting raises ``ConfigError``, naming it."""
    metrics = SinkMetrics()
    start_http_server(s.worker_port, addr=s.worker_bind, registry=metrics.registry)
    log.info("sinks: metrics on http://%s:%d/metrics", s.worker_bind, s.worker_port)
    asyncio.run(_until_signalled(s, metrics))
    return 0


async def _until_signalled(s: Settings, metrics: SinkMetrics) -> None:
    task = asyncio.ensure_future(sink_forever(s, metrics))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        log.info("sinks: stopped")
