"""Sinks: a batch ClickHouse has not taken is never acknowledged, even when the worker stops."""

from __future__ import annotations

import asyncio

from agents.app import create_app
from tests.agents.conftest import agent_settings


async def test_a_batch_not_written_when_the_worker_stops_stays_uncommitted() -> None:
    # ClickHouse at a port nothing listens on: every insert fails and the sink keeps retrying.
    promo = create_app(agent_settings(sink_flush_seconds=0.01))
    agent = promo.app.agents["promo.sink.decisions"]
    async with agent.test_context() as wrapper:
        event = await wrapper.put(b"{}", key=b"u1", wait=False)
        # What Faust's conductor does on delivery (the test context skips it): one reference
        # per stream reading the topic; the offset is committable when it drops to zero.
        event.message.incref()
        await asyncio.sleep(0.5)  # the batch is taken and the first insert has failed
        assert not event.message.acked
    # Leaving the context stopped the agent mid-retry: the message must still not be acked,
    # or its offset would be committed without its row in ClickHouse.
    assert not event.message.acked


def test_the_web_server_listens_on_localhost_by_default() -> None:
    """Faust's pages show table contents to anyone who can reach them."""
    assert create_app(agent_settings()).app.conf.web_bind == "127.0.0.1"
