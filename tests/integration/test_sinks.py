"""The sinks against the real ClickHouse: a row it refuses cannot stop its table."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import TopicPartition
from clickhouse_driver import Client

from agents.sinks import Row, sink_batch, sinks, take_batch
from promo.clickhouse import insert
from promo.settings import Settings
from tests.agents.test_sinks import Broker, decision, record


async def test_a_row_clickhouse_refuses_goes_to_dead_letters_and_the_rest_is_written(
    migrated: Client,
) -> None:
    settings = Settings()
    tp = TopicPartition(settings.topic_decisions, 2)
    by_topic = {sink.topic: sink for sink in sinks(settings)}
    poison = decision(3, model_version=-1)  # decodes, but UInt64 cannot hold it
    records = [record(i, tp, poison if i == 3 else None) for i in range(6)]
    broker = Broker(records, tp)

    def write(table: str, columns: Sequence[str], rows: Sequence[Row]) -> None:
        insert(migrated, table, columns, rows)

    batch = await take_batch(broker, max_records=100, max_seconds=0.2)
    assert await sink_batch(broker, batch, by_topic, write) == 5
    assert migrated.execute("SELECT count() FROM decisions FINAL") == [(5,)]
    letters = migrated.execute(
        "SELECT reason, source_topic, `partition`, `offset`, detail FROM dead_letters FINAL"
    )
    assert [row[:4] for row in letters] == [
        ("rejected_by_clickhouse", settings.topic_decisions, 2, 3)
    ]
    assert "decisions refused 1 rows" in letters[0][4]
    assert broker.committed == {tp: 6}
