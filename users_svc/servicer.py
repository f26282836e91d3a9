"""The UserService RPCs: translate between protobuf and the model, and map errors to statuses."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import grpc

from herald.grpc_errors import abort_invalid_argument, abort_not_found, abort_unavailable
from herald.producer import DeliveryError
from herald.users.v1 import users_pb2, users_pb2_grpc
from users_svc.events import user_created_record
from users_svc.model import InvalidUserError, User, validate_new_user
from users_svc.publisher import EventPublisher
from users_svc.repository import UserRepository

logger = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return str(uuid.uuid4())


class UserServicer(users_pb2_grpc.UserServiceServicer):
    def __init__(
        self,
        *,
        users: UserRepository,
        publisher: EventPublisher,
        events_topic: str,
        event_source: str,
        clock: Callable[[], datetime] = _now,
        new_id: Callable[[], str] = _new_id,
    ) -> None:
        self._users = users
        self._publisher = publisher
        self._events_topic = events_topic
        self._event_source = event_source
        self._clock = clock
        self._new_id = new_id

    def CreateUser(
        self, request: users_pb2.CreateUserRequest, context: grpc.ServicerContext
    ) -> users_pb2.CreateUserResponse:
        try:
            name, email = validate_new_user(request.name, request.email)
        except InvalidUserError as error:
            abort_invalid_argument(context, "INVALID_USER", error.violations)
        user = User(id=self._new_id(), name=name, email=email, create_time=self._clock())
        record = user_created_record(
            user, event_id=self._new_id(), source=self._event_source, topic=self._events_topic
        )
        # The event goes out before the user is kept: a user nobody hears about would be
        # worse than an error the client can retry. (The outbox will make both one step.)
        try:
            self._publisher.publish(record)
        except DeliveryError as error:
            logger.warning("CreateUser failed to publish UserCreated for %s: %s", user.id, error)
            abort_unavailable(
                context, "EVENT_NOT_PUBLISHED", f"could not publish the event: {error}"
            )
        self._users.add(user)
        logger.info("created user %s", user.id)
        return users_pb2.CreateUserResponse(user=to_proto(user))

    def GetUser(
        self, request: users_pb2.GetUserRequest, context: grpc.ServicerContext
    ) -> users_pb2.GetUserResponse:
        if not request.id:
            abort_invalid_argument(context, "INVALID_USER_ID", {"id": "is required"})
        user = self._users.get(request.id)
        if user is None:
            abort_not_found(context, "USER_NOT_FOUND", f"no user with id {request.id!r}")
        return users_pb2.GetUserResponse(user=to_proto(user))


def to_proto(user: User) -> users_pb2.User:
    message = users_pb2.User(id=user.id, name=user.name, email=user.email)
    message.create_time.FromDatetime(user.create_time)
    return message
