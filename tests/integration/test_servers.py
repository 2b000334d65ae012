"""The local servers really answer: a round trip through each, with none of our code involved."""

from __future__ import annotations

import time

from clickhouse_driver import Client
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.structs import TopicPartition

# kafka-python's api_version auto-detection works against Tansu 0.6.0 (it settles on 3.9), so
# it is left unset. Pinning an old one such as (2, 5, 0) breaks KafkaAdminClient's metadata
# parsing ("15 is not a valid ACLOperation").


def test_broker_round_trip(bootstrap_servers: list[str], unique_name: str) -> None:
    topic = f"test-servers-{unique_name}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    try:
        producer = KafkaProducer(bootstrap_servers=bootstrap_servers)
        for i in range(3):
            producer.send(topic, key=b"user-1", value=f"record-{i}".encode())
        producer.close(timeout=20)  # flushes

        # No group: a JoinGroup on Tansu takes half a session timeout, and this test needs none.
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap_servers,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        # Read until the count or a deadline, never up to the end offsets: Tansu reports a wrong
        # "latest" offset when a batch holds several records, as these three likely share one.
        received: list[bytes] = []
        deadline = time.monotonic() + 20
        while len(received) < 3 and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                received.extend(record.value for record in records)
        consumer.close()
    finally:
        admin.delete_topics([topic])  # the broker keeps everything in memory
        admin.close()

    assert received == [b"record-0", b"record-1", b"record-2"]


def test_a_record_sent_alone_after_a_batch_makes_the_reported_end_true(
    bootstrap_servers: list[str], unique_name: str
) -> None:
    # What the changelog's end markers (PROMO_CHANGELOG_END_MARKERS) rely on: Tansu reports a
    # partition's "latest" offset as its last batch's base offset + 1, which for a batch of
    # ten records is nine short; a record sent alone afterwards is a batch of one, and the
    # reported end is then the true one (Kafka reports the true end either way).
    topic = f"test-end-marker-{unique_name}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    try:
        producer = KafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=50)
        for i in range(10):
            producer.send(topic, key=b"user-%d" % i, value=b"state", partition=0)
        producer.flush(timeout=20)
        producer.send(topic, key=b"\x00end:0", value=b"", partition=0)
        producer.close(timeout=20)
        consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None)
        tp = TopicPartition(topic, 0)
        end = consumer.end_offsets([tp])[tp]
        consumer.close()
    finally:
        admin.delete_topics([topic])
        admin.close()

    assert end == 11


def test_clickhouse_round_trip(clickhouse_client: Client) -> None:
    [(version,)] = clickhouse_client.execute("SELECT version()")
    assert int(version.split(".")[0]) >= 18, version

    clickhouse_client.execute(
        "CREATE TABLE round_trip (id UInt32, name String) ENGINE = MergeTree ORDER BY id"
    )
    # Rows go in as the insert's parameter: on 18.16 values written inline in the SQL hang.
    clickhouse_client.execute(
        "INSERT INTO round_trip (id, name) VALUES", [(1, "a"), (2, "b"), (3, "c")]
    )

    assert clickhouse_client.execute("SELECT count() FROM round_trip") == [(3,)]
