"""What each event type means for an account, and which decoder a record needs.

Every event carries the user's whole state and its version, so each decoder only turns the
payload into the account it describes; the store keeps it if it is newer. A UserDeleted
describes a tombstone: the account with its name and email erased, at the delete's version.
DECODERS is the one place that knows event types: adding one is a function here and a line
there. The Router picks a record's decoder by its `ce_type` header and checks that record and
event agree with each other and with herald.contract's rules; a record that fails any check
is poison.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime

from confluent_kafka import Message
from google.protobuf.message import DecodeError

from auth_svc.accounts import Account, DecodedEvent, RecordPosition
from herald.contract.events import created_problem, deleted_problem, updated_problem
from herald.kafka.cloudevents import SPEC_VERSION
from herald.kafka.records import ReceivedHeaders
from herald.timestamps import from_timestamp
from herald.users.v1 import events_pb2


class InvalidEventError(ValueError):
    """The event decoded but its content is unusable or inconsistent."""


# What a tombstone holds for create_time: when the user was created is erased too.
TOMBSTONE_CREATE_TIME = datetime(1970, 1, 1, tzinfo=UTC)


def user_created(payload: bytes, now: datetime) -> Account:
    """Raises google.protobuf.message.DecodeError or InvalidEventError on a bad payload."""
    event = events_pb2.UserCreated.FromString(payload)
    _check(created_problem(event.event_id, event.user_id, event.version, event.name, event.email))
    return _account(event, now)


def user_updated(payload: bytes, now: datetime) -> Account:
    event = events_pb2.UserUpdated.FromString(payload)
    _check(updated_problem(event.event_id, event.user_id, event.version, event.name, event.email))
    return _account(event, now)


def user_deleted(payload: bytes, now: datetime) -> Account:
    """The tombstone a UserDeleted makes: the user's id and version, and nothing of its
    personal data (the event carries none)."""
    event = events_pb2.UserDeleted.FromString(payload)
    _check(deleted_problem(event.event_id, event.user_id, event.version))
    deleted = event.delete_time
    _utc_datetime(deleted.seconds, deleted.nanos, "delete_time")  # only checked: not kept
    return Account(
        event.user_id, "", "", TOMBSTONE_CREATE_TIME, event.version, event.event_id, now, True
    )


def _check(problem: str | None) -> None:
    if problem is not None:
        raise InvalidEventError(problem)


def _account(event: events_pb2.UserCreated | events_pb2.UserUpdated, now: datetime) -> Account:
    created = event.create_time
    # Positional: keywords make building the tuple measurably slower, once per event.
    return Account(
        event.user_id,
        event.name,
        event.email,
        _utc_datetime(created.seconds, created.nanos),
        event.version,
        event.event_id,
        now,
    )


def _utc_datetime(seconds: int, nanos: int, field: str = "create_time") -> datetime:
    try:
        return from_timestamp(seconds, nanos)
    except ValueError as error:
        raise InvalidEventError(f"invalid {field}: {error}") from None


Decoder = Callable[[bytes, datetime], Account]

# `ce_type` header → decoder.
DECODERS: dict[str, Decoder] = {
    events_pb2.UserCreated.DESCRIPTOR.full_name: user_created,
    events_pb2.UserUpdated.DESCRIPTOR.full_name: user_updated,
    events_pb2.UserDeleted.DESCRIPTOR.full_name: user_deleted,
}


class PoisonRecordError(ValueError):
    """A record no retry can apply: undecodable, of an unknown type, or invalid."""


class Router:
    def __init__(self, decoders: Mapping[str, Decoder], sources: Collection[str]) -> None:
        # Keyed by `ce_type` as it arrives, bytes: most records are routed by one lookup.
        self._routes = {t.encode(): (t, decoder) for t, decoder in decoders.items()}
        self._sources = {source.encode() for source in sources}

    def decode(self, message: Message, position: RecordPosition, now: datetime) -> DecodedEvent:
        """The event the record carries; PoisonRecordError if it cannot be one, or if record
        and event do not agree (CloudEvents id and key against the event's ids)."""
        attributes = _attributes(message.headers())
        event_type, decoder = self._route(attributes)
        try:
            account = decoder(message.value() or b"", now)
        except (DecodeError, InvalidEventError) as error:
            raise PoisonRecordError(f"{type(error).__name__}: {error}") from error
        if attributes.get("ce_id") != account.event_id.encode():
            raise PoisonRecordError("ce_id header differs from the event's event_id")
        if message.key() != account.user_id.encode():
            raise PoisonRecordError("record key differs from the event's user_id")
        return DecodedEvent(account, event_type, position)

    def _route(self, attributes: Mapping[str, bytes]) -> tuple[str, Decoder]:
        """The type and decoder the record's `ce_type` names, once its envelope is sound."""
        if attributes.get("ce_specversion") != _SPEC_VERSION:
            raise PoisonRecordError(f"no ce_specversion {SPEC_VERSION} header")
        if attributes.get("ce_source") not in self._sources:
            raise PoisonRecordError("ce_source is not an allowed source")
        sent = attributes.get("ce_type")
        if sent is None:
            raise PoisonRecordError("no ce_type header")
        route = self._routes.get(sent)
        if route is None:
            raise PoisonRecordError(f"unknown ce_type {sent[:64]!r}")
        return route


_SPEC_VERSION = SPEC_VERSION.encode()
_ATTRIBUTES = frozenset({"ce_specversion", "ce_id", "ce_source", "ce_type"})


def _attributes(headers: ReceivedHeaders | None) -> dict[str, bytes]:
    """The CloudEvents attributes the router checks, as sent (the last copy of each wins)."""
    found: dict[str, bytes] = {}
    if isinstance(headers, Mapping):
        headers = list(headers.items())
    for name, value in headers or ():
        if name in _ATTRIBUTES and value is not None:
            found[name] = value if isinstance(value, bytes) else value.encode()
    return found
