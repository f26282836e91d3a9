"""What each event type means for an account, and which decoder a record needs.

Every event carries the user's whole state and its version, so each decoder only turns the
payload into the account it describes; the store keeps it if it is newer. DECODERS is the one
place that knows event types: adding one is a function here and a line there. The Router
picks a record's decoder by its `ce_type` header; a record no decoder can take is poison.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from confluent_kafka import Message
from google.protobuf.message import DecodeError

from auth_svc.accounts import Account, DecodedEvent, RecordPosition
from herald.kafka.records import ReceivedHeaders, header_values
from herald.timestamps import from_timestamp
from herald.users.v1 import events_pb2


class InvalidEventError(ValueError):
    """The event decoded but its content is unusable (a required field is empty, say)."""


def user_created(payload: bytes, now: datetime) -> Account:
    """Raises google.protobuf.message.DecodeError or InvalidEventError on a bad payload."""
    event = events_pb2.UserCreated.FromString(payload)
    # Events from before versions existed count as the first version.
    return _account(event, event.version or 1, now)


def user_updated(payload: bytes, now: datetime) -> Account:
    event = events_pb2.UserUpdated.FromString(payload)
    if event.version < 2:
        raise InvalidEventError(f"UserUpdated with version {event.version}; updates start at 2")
    return _account(event, event.version, now)


def _account(
    event: events_pb2.UserCreated | events_pb2.UserUpdated, version: int, now: datetime
) -> Account:
    event_id, user_id = event.event_id, event.user_id
    if not event_id or not user_id:
        raise InvalidEventError("event without event_id or user_id")
    created = event.create_time
    # Positional: keywords make building the tuple measurably slower, once per event.
    return Account(
        user_id,
        event.name,
        event.email,
        _utc_datetime(created.seconds, created.nanos),
        version,
        event_id,
        now,
    )


def _utc_datetime(seconds: int, nanos: int) -> datetime:
    try:
        return from_timestamp(seconds, nanos)
    except ValueError as error:
        raise InvalidEventError(f"invalid create_time: {error}") from None


Decoder = Callable[[bytes, datetime], Account]

# `ce_type` header → decoder.
DECODERS: dict[str, Decoder] = {
    events_pb2.UserCreated.DESCRIPTOR.full_name: user_created,
    events_pb2.UserUpdated.DESCRIPTOR.full_name: user_updated,
}


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
