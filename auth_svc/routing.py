"""Which decoder a record needs, by its `ce_type` header; a record none can take is poison."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from confluent_kafka import Message
from google.protobuf.message import DecodeError

from auth_svc.accounts import DecodedEvent, RecordPosition
from auth_svc.decoders import Decoder, InvalidEventError
from herald.kafka.records import ReceivedHeaders, header_values


class PoisonRecordError(ValueError):
    """A record no retry can apply: undecodable, of an unknown type, or invalid."""


class Router:
    def __init__(self, decoders: Mapping[str, Decoder]) -> None:
        self._decoders = decoders
        # The same decoders keyed by `ce_type` as it arrives, bytes, too: most records are
        # routed by one dict lookup, without decoding their headers.
        self._routes: dict[str | bytes, tuple[str, Decoder]] = {}
        for event_type, decoder in decoders.items():
            self._routes[event_type] = self._routes[event_type.encode()] = (event_type, decoder)

    def decode(self, message: Message, position: RecordPosition, now: datetime) -> DecodedEvent:
        """The event the record carries; PoisonRecordError if it cannot be one."""
        event_type, decoder = self._route(message.headers())
        try:
            return DecodedEvent(decoder(message.value() or b"", now), event_type, position)
        except (DecodeError, InvalidEventError) as error:
            raise PoisonRecordError(f"{type(error).__name__}: {error}") from error

    def _route(self, headers: ReceivedHeaders | None) -> tuple[str, Decoder]:
        """The type and decoder the record's `ce_type` header names."""
        if isinstance(headers, list):
            sent: str | bytes | None = None
            for name, value in headers:
                if name == "ce_type":
                    sent = value
            route = self._routes.get(sent) if sent is not None else None
            if route is not None:
                return route
        # Not a type known as it came: read the headers as text, as before, to route the
        # record or to say exactly what is wrong with it.
        event_type = header_values(headers).get("ce_type")
        if not event_type:
            raise PoisonRecordError("no ce_type header")
        decoder = self._decoders.get(event_type)
        if decoder is None:
            raise PoisonRecordError(f"unknown ce_type {event_type!r}")
        return event_type, decoder
