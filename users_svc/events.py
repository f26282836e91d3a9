"""Turning a new user into the Kafka record that announces it."""

from __future__ import annotations

from herald.cloudevents import EventAttributes
from herald.producer import Record
from herald.users.v1 import events_pb2
from users_svc.model import User

USER_CREATED_TYPE = events_pb2.UserCreated.DESCRIPTOR.full_name


def user_created_record(user: User, *, event_id: str, source: str, topic: str) -> Record:
    """A UserCreated record: keyed by user id, so each user's events stay in order."""
    event = events_pb2.UserCreated(
        event_id=event_id, user_id=user.id, name=user.name, email=user.email
    )
    event.create_time.FromDatetime(user.create_time)
    attributes = EventAttributes(
        id=event_id, source=source, type=USER_CREATED_TYPE, time=user.create_time
    )
    return Record(
        topic=topic,
        key=user.id.encode(),
        value=event.SerializeToString(),
        headers=attributes.to_headers(),
    )
