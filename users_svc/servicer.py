"""The UserService RPCs: translate protobuf to the application and its errors to statuses."""

from __future__ import annotations

import logging
from typing import NoReturn

import grpc

from herald.rpc.errors import abort, bad_request, retry_info, unexpected_errors_as_internal
from herald.storage.errors import StoreUnavailableError
from herald.users.v1 import users_pb2, users_pb2_grpc
from users_svc.application import UserApplication
from users_svc.model import (
    EmailTakenError,
    InvalidRequestError,
    RequestIdReusedError,
    User,
    UserNotFoundError,
    validate_change,
    validate_new_user,
)

logger = logging.getLogger(__name__)

DOMAIN = "users.herald"
hide_unexpected_errors = unexpected_errors_as_internal(DOMAIN)


class UserServicer(users_pb2_grpc.UserServiceServicer):
    def __init__(self, users: UserApplication) -> None:
        self._users = users

    @hide_unexpected_errors
    def CreateUser(
        self, request: users_pb2.CreateUserRequest, context: grpc.ServicerContext
    ) -> users_pb2.CreateUserResponse:
        try:
            new = validate_new_user(request.name, request.email, request.request_id)
            user, created = self._users.create(new)
        except InvalidRequestError as error:
            _abort_invalid(context, error)
        except RequestIdReusedError as error:
            abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                domain=DOMAIN,
                reason="REQUEST_ID_REUSED",
                message=str(error),
            )
        except EmailTakenError:
            _abort_email_taken(context)
        except StoreUnavailableError:
            _abort_store_unavailable(context)
        # DEBUG, not INFO: a log line per call costs ~10% of the server's CPU at full load
        # (py-spy, `make bench`), mostly waiting on the handler's lock.
        if created:
            logger.debug("created user %s", user.id)
        else:
            logger.debug("CreateUser retried with request %s: user %s", new.request_id, user.id)
        return users_pb2.CreateUserResponse(user=to_proto(user))

    @hide_unexpected_errors
    def GetUser(
        self, request: users_pb2.GetUserRequest, context: grpc.ServicerContext
    ) -> users_pb2.GetUserResponse:
        if not request.id:
            abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                domain=DOMAIN,
                reason="INVALID_USER_ID",
                message="id: is required",
            )
        try:
            user = self._users.get(request.id)
        except UserNotFoundError:
            _abort_not_found(context, request.id)
        except StoreUnavailableError:
            _abort_store_unavailable(context)
        return users_pb2.GetUserResponse(user=to_proto(user))

    @hide_unexpected_errors
    def UpdateUser(
        self, request: users_pb2.UpdateUserRequest, context: grpc.ServicerContext
    ) -> users_pb2.UpdateUserResponse:
        try:
            change = validate_change(
                request.user.id, request.user.name, request.user.email, request.update_mask.paths
            )
            user = self._users.update(change)
        except InvalidRequestError as error:
            _abort_invalid(context, error)
        except UserNotFoundError:
            _abort_not_found(context, request.user.id)
        except EmailTakenError:
            _abort_email_taken(context)
        except StoreUnavailableError:
            _abort_store_unavailable(context)
        return users_pb2.UpdateUserResponse(user=to_proto(user))


def to_proto(user: User) -> users_pb2.User:
    message = users_pb2.User(id=user.id, name=user.name, email=user.email)
    message.create_time.FromDatetime(user.create_time)
    message.update_time.FromDatetime(user.update_time)
    return message


def _abort_invalid(context: grpc.ServicerContext, error: InvalidRequestError) -> NoReturn:
    # One ErrorInfo per status: the first bad field's reason; BadRequest lists them all.
    abort(
        context,
        grpc.StatusCode.INVALID_ARGUMENT,
        domain=DOMAIN,
        reason=error.violations[0].reason,
        message=str(error),
        details=[bad_request(error.violations)],
    )


def _abort_email_taken(context: grpc.ServicerContext) -> NoReturn:
    abort(
        context,
        grpc.StatusCode.ALREADY_EXISTS,
        domain=DOMAIN,
        reason="EMAIL_TAKEN",
        message="another user has this email",
    )


def _abort_not_found(context: grpc.ServicerContext, user_id: str) -> NoReturn:
    abort(
        context,
        grpc.StatusCode.NOT_FOUND,
        domain=DOMAIN,
        reason="USER_NOT_FOUND",
        message=f"no user with id {user_id!r}",
    )


def _abort_store_unavailable(context: grpc.ServicerContext) -> NoReturn:
    abort(
        context,
        grpc.StatusCode.UNAVAILABLE,
        domain=DOMAIN,
        reason="STORE_UNAVAILABLE",
        message="the user store is unavailable; retry with backoff",
        details=[retry_info(1)],
    )
