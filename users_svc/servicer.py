"""The UserService RPCs: translate protobuf to the application and its errors to statuses."""

from __future__ import annotations

import logging
from typing import NoReturn

import grpc

from herald.rpc.errors import Context, ServiceErrors
from herald.rpc.policy import ADMIN, Rule, scopes
from herald.rpc.server import ServiceBinding
from herald.users.v1 import users_pb2, users_pb2_grpc
from users_svc.application import UserApplication
from users_svc.model import (
    EmailTakenError,
    InvalidRequestError,
    RequestIdReusedError,
    User,
    UserNotFoundError,
    validate_change,
    validate_deletion,
    validate_new_user,
)

logger = logging.getLogger(__name__)

ERRORS = ServiceErrors("users.herald", store="user")
# Who may call each RPC when tokens are required (README, *Tokens and policy*).
RULES = {
    "CreateUser": Rule(scopes("users.create", ADMIN)),
    "GetUser": Rule(scopes(ADMIN), subject_of=lambda request: request.id),
    "UpdateUser": Rule(scopes(ADMIN), subject_of=lambda request: request.user.id),
    "DeleteUser": Rule(scopes(ADMIN), subject_of=lambda request: request.id),
}
SERVICE_NAME = users_pb2.DESCRIPTOR.services_by_name["UserService"].full_name


class UserServicer(users_pb2_grpc.UserServiceServicer):
    def __init__(self, users: UserApplication) -> None:
        self._users = users

    @ERRORS.as_status
    async def CreateUser(
        self, request: users_pb2.CreateUserRequest, context: Context
    ) -> users_pb2.CreateUserResponse:
        try:
            new = validate_new_user(request.name, request.email, request.request_id)
            user, created = await self._users.create(new)
        except InvalidRequestError as error:
            _abort_invalid(error)
        except RequestIdReusedError as error:
            ERRORS.invalid(reason="REQUEST_ID_REUSED", message=str(error))
        except EmailTakenError:
            _abort_email_taken()
        except UserNotFoundError:
            # A retry of the request that made a user erased since: it is not made again.
            ERRORS.not_found(
                reason="USER_NOT_FOUND", message="the user this request_id created was deleted"
            )
        # DEBUG, not INFO: a log line per call costs ~10% of the server's CPU at full load
        # (py-spy, `make bench`), mostly waiting on the handler's lock.
        if created:
            logger.debug("created user %s", user.id)
        else:
            logger.debug("CreateUser retried with request %s: user %s", new.request_id, user.id)
        return users_pb2.CreateUserResponse(user=to_proto(user))

    @ERRORS.as_status
    async def GetUser(
        self, request: users_pb2.GetUserRequest, context: Context
    ) -> users_pb2.GetUserResponse:
        user_id = ERRORS.user_id(request.id, field="id")
        try:
            user = await self._users.get(user_id)
        except UserNotFoundError:
            _abort_not_found(user_id)
        return users_pb2.GetUserResponse(user=to_proto(user))

    @ERRORS.as_status
    async def UpdateUser(
        self, request: users_pb2.UpdateUserRequest, context: Context
    ) -> users_pb2.UpdateUserResponse:
        try:
            change = validate_change(
                request.user.id, request.user.name, request.user.email, request.update_mask.paths
            )
            user = await self._users.update(change)
        except InvalidRequestError as error:
            _abort_invalid(error)
        except UserNotFoundError:
            # validate_change let only a canonical UUID through, so this repeats 36 characters.
            _abort_not_found(change.user_id)
        except EmailTakenError:
            _abort_email_taken()
        return users_pb2.UpdateUserResponse(user=to_proto(user))

    @ERRORS.as_status
    async def DeleteUser(
        self, request: users_pb2.DeleteUserRequest, context: Context
    ) -> users_pb2.DeleteUserResponse:
        try:
            deletion = validate_deletion(request.id, request.request_id)
            tombstone = await self._users.delete(deletion)
        except InvalidRequestError as error:
            _abort_invalid(error)
        except RequestIdReusedError as error:
            ERRORS.invalid(reason="REQUEST_ID_REUSED", message=str(error))
        except UserNotFoundError:
            _abort_not_found(deletion.user_id)
        logger.debug("deleted user %s (version %d)", tombstone.id, tombstone.version)
        return users_pb2.DeleteUserResponse(id=tombstone.id, version=tombstone.version)


def user_service(users: UserApplication) -> ServiceBinding[UserServicer]:
    """UserService over `users`, ready for herald.rpc.server.create_server."""
    servicer = UserServicer(users)
    return ServiceBinding(SERVICE_NAME, servicer, ERRORS, RULES)


def to_proto(user: User) -> users_pb2.User:
    message = users_pb2.User(id=user.id, name=user.name, email=user.email, version=user.version)
    message.create_time.FromDatetime(user.create_time)
    message.update_time.FromDatetime(user.update_time)
    return message


def _abort_invalid(error: InvalidRequestError) -> NoReturn:
    # One ErrorInfo per status: the first bad field's reason; BadRequest lists them all.
    ERRORS.invalid(
        reason=error.violations[0].reason,
        message=str(error),
        violations=error.violations,
    )


def _abort_email_taken() -> NoReturn:
    ERRORS.abort(
        grpc.StatusCode.ALREADY_EXISTS,
        reason="EMAIL_TAKEN",
        message="another user has this email",
    )


def _abort_not_found(user_id: str) -> NoReturn:
    ERRORS.not_found(reason="USER_NOT_FOUND", message=f"no user with id {user_id!r}")
