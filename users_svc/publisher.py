"""How users_svc hands an event to Kafka, behind a Protocol the servicer depends on."""

from __future__ import annotations

from typing import Protocol

from herald.producer import DeliveringProducer, Record


class EventPublisher(Protocol):
    def publish(self, record: Record) -> None:
        """Return once the event is durably stored; raise DeliveryError otherwise."""
        ...


class KafkaEventPublisher:
    """Publishes through the shared producer and waits for the broker's acknowledgement."""

    def __init__(self, producer: DeliveringProducer, timeout_s: float) -> None:
        self._producer = producer
        self._timeout_s = timeout_s

    def publish(self, record: Record) -> None:
        self._producer.send(record, self._timeout_s)
