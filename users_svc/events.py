"""The Kafka records that announce a user's changes: protobuf value, CloudEvents headers, key."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf.message import Message

from herald.kafka.cloudevents import EventAttributes
from herald.kafka.records import Record
from herald.users.v1 import events_pb2
from users_svc.model import Tombstone, User

USER_CREATED = events_pb2.UserCreated.DESCRIPTOR.full_name
USER_UPDATED = events_pb2.UserUpdated.DESCRIPTOR.full_name
USER_DELETED = events_pb2.UserDeleted.DESCRIPTOR.full_name


@dataclass(frozen=True)
class EventRecordFactory:
    """Builds the records of one topic and source; keyed by user id, so per-user order holds."""

    topic: str
    source: str

    def user_created(self, user: User) -> Record:
        event = events_pb2.UserCreated(**_state(user))
        event.create_time.FromDatetime(user.create_time)
        return self._record(user.id, user.event_id, user.update_time, USER_CREATED, event)

    def user_updated(self, user: User, changed_fields: Sequence[str]) -> Record:
        event = events_pb2.UserUpdated(**_state(user), changed_fields=changed_fields)
        event.create_time.FromDatetime(user.create_time)
        event.update_time.FromDatetime(user.update_time)
        return self._record(user.id, user.event_id, user.update_time, USER_UPDATED, event)

    def user_deleted(self, tombstone: Tombstone) -> Record:
        """The erasure's record: ids, version and time, no name or email."""
        event = events_pb2.UserDeleted(
            event_id=tombstone.event_id, user_id=tombstone.id, version=tombstone.version
        )
        event.delete_time.FromDatetime(tombstone.delete_time)
        return self._record(
            tombstone.id, tombstone.event_id, tombstone.delete_time, USER_DELETED, event
        )

    def _record(
        self, user_id: str, event_id: str, time: datetime, event_type: str, event: Message
    ) -> Record:
        attributes = EventAttributes(id=event_id, source=self.source, type=event_type, time=time)
        return Record(
            topic=self.topic,
            key=user_id.encode(),
            value=event.SerializeToString(),
            headers=attributes.to_headers(),
        )


def _state(user: User) -> dict[str, Any]:
    """The fields every event carries: which change it is, and the user's whole state."""
    return {
        "event_id": user.event_id,
        "user_id": user.id,
        "name": user.name,
        "email": user.email,
        "version": user.version,
    }
