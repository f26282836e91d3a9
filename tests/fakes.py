"""Test doubles for the ports the services depend on."""

from __future__ import annotations

from herald.producer import DeliveryError, Record


class FakeEventPublisher:
    """Keeps what it was asked to publish; can be told to fail like an unreachable broker."""

    def __init__(self) -> None:
        self.published: list[Record] = []
        self.failure: str | None = None

    def publish(self, record: Record) -> None:
        if self.failure is not None:
            raise DeliveryError(self.failure)
        self.published.append(record)
