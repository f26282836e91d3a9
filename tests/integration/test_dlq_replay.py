"""`herald dlq replay` against the real broker: to the events topic only, once, without the
reason, and only the letters a retry can fix."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from herald.kafka.config import producer_config
from herald.tools.cli import main
from herald.tools.replay import Summary, replay
from tests.support import read_all, read_topic, unique

Headers = list[tuple[str, str | bytes | None]]


def create(bootstrap: str, *topics: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics(
        [NewTopic(t, num_partitions=1, replication_factor=1) for t in topics]
    ).values():
        future.result(30)


def letter_headers(origin: str, error_class: str = "StoreUnavailableError") -> Headers:
    return [
        ("ce_type", b"herald.users.v1.UserCreated"),
        ("herald.dlq.topic", origin.encode()),
        ("herald.dlq.error.class", error_class.encode()),
    ]


def write(bootstrap: str, topic: str, *letters: tuple[bytes, Headers]) -> None:
    kafka = Producer(producer_config(bootstrap, "test"))
    for value, headers in letters:
        kafka.produce(topic, key=b"user", value=value, headers=headers)
    assert kafka.flush(10) == 0


def values(bootstrap: str, topic: str) -> list[bytes | None]:
    return [m.value() for m in read_all(bootstrap, topic)]


def test_replay_sends_each_record_back_once_without_dlq_headers(kafka_bootstrap: str) -> None:
    events, dlq = unique("events"), unique("events-dlq")
    create(kafka_bootstrap, events, dlq)
    write(kafka_bootstrap, dlq, *[(b"payload-%d" % n, letter_headers(events)) for n in range(3)])

    assert replay(kafka_bootstrap, dlq, to_topic=events) == Summary(replayed=3)
    back = read_topic(kafka_bootstrap, events, count=3)
    assert [m.value() for m in back] == [b"payload-%d" % n for n in range(3)]
    assert all(m.headers() == [("ce_type", b"herald.users.v1.UserCreated")] for m in back)

    # A second run finds nothing new; the CLI says so and succeeds.
    assert main(["dlq", "replay", "--bootstrap-servers", kafka_bootstrap, "--topic", dlq]) == 0
    assert replay(kafka_bootstrap, dlq, to_topic=events) == Summary()


def test_a_forged_destination_is_ignored(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    events, dlq, target, other = (unique(n) for n in ("events", "dlq", "target", "other"))
    create(kafka_bootstrap, events, dlq, target, other)
    write(kafka_bootstrap, dlq, (b"forged", letter_headers(target)))
    monkeypatch.setenv("HERALD_EVENTS_TOPIC", events)

    argv = ["dlq", "replay", "--bootstrap-servers", kafka_bootstrap, "--topic", dlq]
    assert main(argv) == 0
    assert values(kafka_bootstrap, target) == []
    assert values(kafka_bootstrap, events) == [b"forged"]
    assert "replayed 1," in capsys.readouterr().out

    # An explicit --to wins over the setting, and still over the header.
    write(kafka_bootstrap, dlq, (b"forged again", letter_headers(target)))
    assert main([*argv, "--to", other]) == 0
    assert values(kafka_bootstrap, other) == [b"forged again"]
    assert values(kafka_bootstrap, target) == []


def test_only_what_a_retry_can_fix_goes_back(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    events, dlq = unique("events"), unique("events-dlq")
    create(kafka_bootstrap, events, dlq)
    truncated = [*letter_headers(events), ("herald.dlq.value.truncated", b"true")]
    write(
        kafka_bootstrap,
        dlq,
        (b"store was down", letter_headers(events)),
        (b"not protobuf", letter_headers(events, "DecodeError")),
        (b"cut short", truncated),
        (b"no headers", []),
    )
    assert replay(kafka_bootstrap, dlq, to_topic=events) == Summary(
        replayed=1, poison=1, truncated=1, malformed=1
    )
    assert values(kafka_bootstrap, events) == [b"store was down"]
    # Skipped letters are named by where they are, never by what they hold.
    assert "partition 0 offset 3" in caplog.text
    assert "no headers" not in caplog.text

    # The group moved past the skipped ones: a plain second run has nothing to do.
    assert replay(kafka_bootstrap, dlq, to_topic=events) == Summary()
    assert values(kafka_bootstrap, events) == [b"store was down"]


def test_include_poison_replays_poison_but_never_a_cut_letter(kafka_bootstrap: str) -> None:
    events, dlq = unique("events"), unique("events-dlq")
    create(kafka_bootstrap, events, dlq)
    truncated = [*letter_headers(events, "DecodeError"), ("herald.dlq.value.truncated", b"true")]
    write(
        kafka_bootstrap,
        dlq,
        (b"invalid", letter_headers(events, "InvalidEventError")),
        (b"cut short", truncated),
        (b"no headers", []),
    )
    summary = replay(kafka_bootstrap, dlq, to_topic=events, include_poison=True)
    assert summary == Summary(replayed=1, truncated=1, malformed=1)
    assert values(kafka_bootstrap, events) == [b"invalid"]
