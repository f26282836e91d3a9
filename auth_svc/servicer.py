"""The AuthService RPCs: serve the accounts the consumer has built."""

from __future__ import annotations

import grpc

from auth_svc.accounts import Account, AccountStore
from herald.auth.v1 import auth_pb2, auth_pb2_grpc
from herald.grpc_errors import abort, internal_errors_hidden

DOMAIN = "auth.herald"
guarded = internal_errors_hidden(DOMAIN)


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, store: AccountStore) -> None:
        self._store = store

    @guarded
    def GetAccount(
        self, request: auth_pb2.GetAccountRequest, context: grpc.ServicerContext
    ) -> auth_pb2.GetAccountResponse:
        if not request.user_id:
            abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                domain=DOMAIN,
                reason="INVALID_USER_ID",
                message="user_id: is required",
            )
        account = self._store.get(request.user_id)
        if account is None:
            abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                domain=DOMAIN,
                reason="ACCOUNT_NOT_FOUND",
                message=f"no account for user {request.user_id!r} yet",
            )
        return auth_pb2.GetAccountResponse(account=to_proto(account))


def to_proto(account: Account) -> auth_pb2.Account:
    message = auth_pb2.Account(
        user_id=account.user_id,
        name=account.name,
        email=account.email,
        state=auth_pb2.ACCOUNT_STATE_ACTIVE,
        last_event_id=account.last_event_id,
    )
    message.create_time.FromDatetime(account.create_time)
    message.update_time.FromDatetime(account.update_time)
    return message
