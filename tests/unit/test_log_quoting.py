"""Client and record text in log lines: quoted and bounded, so a hostile header can neither
start a forged line nor flood the log."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest
from confluent_kafka import Message

from auth_svc.accounts import RecordPosition
from auth_svc.batch import InFlight
from auth_svc.dead_letters import DeadLetterWriter
from auth_svc.decoders import PoisonRecordError
from auth_svc.status import StatusBoard
from herald.contract.fields import MAX_ECHOED, quoted
from herald.kafka.config import producer_config
from herald.kafka.records import Record
from herald.kafka.sender import KafkaBatchSender

HOSTILE = "evil\n2026-01-01 00:00:00,000 ERROR forged: " + "A" * 10_000
# repr() of at most MAX_ECHOED characters, none of which needs more than \U0010ffff.
BOUND = 2 + MAX_ECHOED * 10


class AcceptingSender:
    def send(self, records: Sequence[Record]) -> list[bool]:
        return [True] * len(records)

    def close(self, timeout_s: float) -> int:
        return 0


def one_line(caplog: pytest.LogCaptureFixture) -> str:
    [record] = caplog.records
    line = record.getMessage()
    assert "\n" not in line
    assert "\r" not in line
    return line


def test_quoted_escapes_line_breaks_and_cuts_long_text() -> None:
    assert quoted("a\nb") == "'a\\nb'"
    assert quoted("x" * 10_000) == repr("x" * (MAX_ECHOED - 1) + "…")
    assert "\n" not in quoted(HOSTILE)
    assert len(quoted(HOSTILE)) <= BOUND
    assert len(quoted("\U0010ffff" * 1000)) <= BOUND  # escapes grow, but only so far


def test_a_dead_letter_warning_is_one_bounded_line(caplog: pytest.LogCaptureFixture) -> None:
    writer = DeadLetterWriter(AcceptingSender(), "events.dlq", StatusBoard("g", 10, 1.0))
    message = Message(topic="events", partition=2, offset=7, key=b"k", value=b"v", headers=[])
    record = InFlight(message, RecordPosition("events", 2, 7))
    # An error whose text quotes a header whole, as a future check might.
    error = PoisonRecordError(f"unknown ce_type {HOSTILE}")
    with caplog.at_level(logging.WARNING, logger="auth_svc.dead_letters"):
        writer.write([(record, error)])
    line = one_line(caplog)
    assert line.startswith("dead-lettered events[2]@7: 'unknown ce_type evil\\n")
    assert len(line) <= len("dead-lettered events[2]@7: ") + BOUND
    assert record.finished


def test_a_record_the_client_refuses_logs_its_topic_quoted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A replayed dead letter's topic comes from its header; too large a value makes
    # librdkafka refuse the record at once.
    config = producer_config("unused:1", "test", **{"test.mock.num.brokers": 1})
    sender = KafkaBatchSender(config, timeout_s=2)
    try:
        with caplog.at_level(logging.ERROR, logger="herald.kafka.sender"):
            sent = sender.send([Record(HOSTILE, b"k", b"v" * 2_000_000, [])])
    finally:
        sender.close(2)
    assert sent == [False]
    line = one_line(caplog)
    assert line.startswith("record for 'evil\\n2026")
    assert len(line) <= 2 * BOUND + len("record for  refused by the client: ")
