"""`herald dlq replay` against the real broker: back to the origin, once, without the reason."""

from __future__ import annotations

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from herald.kafka.config import producer_config
from herald.tools.cli import main
from herald.tools.replay import replay
from tests.support import read_topic, unique


def create(bootstrap: str, *topics: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics(
        [NewTopic(t, num_partitions=1, replication_factor=1) for t in topics]
    ).values():
        future.result(30)


def test_replay_sends_each_record_back_once_without_dlq_headers(kafka_bootstrap: str) -> None:
    origin, dlq = unique("origin"), unique("origin-dlq")
    create(kafka_bootstrap, origin, dlq)
    kafka = Producer(producer_config(kafka_bootstrap, "test"))
    for n in range(3):
        kafka.produce(
            dlq,
            key=b"user-%d" % n,
            value=b"payload-%d" % n,
            headers=[
                ("ce_type", b"herald.users.v1.UserCreated"),
                ("herald.dlq.topic", origin.encode()),
                ("herald.dlq.error.class", b"StoreUnavailableError"),
            ],
        )
    assert kafka.flush(10) == 0

    assert replay(kafka_bootstrap, dlq) == 3
    back = read_topic(kafka_bootstrap, origin, count=3)
    assert [(m.key(), m.value()) for m in back] == [
        (b"user-%d" % n, b"payload-%d" % n) for n in range(3)
    ]
    assert all(m.headers() == [("ce_type", b"herald.users.v1.UserCreated")] for m in back)

    # A second run finds nothing new; the CLI says so and succeeds.
    assert main(["dlq", "replay", "--bootstrap-servers", kafka_bootstrap, "--topic", dlq]) == 0
    assert replay(kafka_bootstrap, dlq) == 0
