"""The AuthService RPCs: serve the accounts the consumer has built."""

from __future__ import annotations

from collections.abc import Callable

from auth_svc.accounts import Account, AccountStore
from auth_svc.status import ConsumerStatus
from herald.auth.v1 import auth_pb2, auth_pb2_grpc
from herald.rpc.errors import Context, ServiceErrors
from herald.rpc.policy import ADMIN, OPERATOR, Rule, scopes
from herald.rpc.server import ServiceBinding

ERRORS = ServiceErrors("auth.herald", store="account")
# Who may call each RPC when tokens are required (README, *Tokens and policy*).
RULES = {
    "GetAccount": Rule(scopes(ADMIN, OPERATOR), subject_of=lambda request: request.user_id),
    "GetConsumerStatus": Rule(scopes(OPERATOR, ADMIN)),
}
SERVICE_NAME = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, store: AccountStore, consumer_status: Callable[[], ConsumerStatus]) -> None:
        self._store = store
        self._consumer_status = consumer_status

    @ERRORS.as_status
    async def GetAccount(
        self, request: auth_pb2.GetAccountRequest, context: Context
    ) -> auth_pb2.GetAccountResponse:
        user_id = ERRORS.user_id(request.user_id, field="user_id")
        account = await self._store.get_async(user_id)
        # An erased user's tombstone answers as no account at all: the same reason and
        # message, so nothing tells an erased user from one never seen.
        if account is None or account.deleted:
            ERRORS.not_found(
                reason="ACCOUNT_NOT_FOUND",
                message=f"no account for user {user_id} yet",
            )
        return auth_pb2.GetAccountResponse(account=to_proto(account))

    @ERRORS.as_status
    async def GetConsumerStatus(
        self, request: auth_pb2.GetConsumerStatusRequest, context: Context
    ) -> auth_pb2.GetConsumerStatusResponse:
        # A snapshot under a lock the consumer holds only briefly: fine on the event loop.
        status = self._consumer_status()
        return auth_pb2.GetConsumerStatusResponse(
            group_id=status.group_id,
            connected=status.connected,
            partitions=[
                auth_pb2.PartitionStatus(
                    topic=p.topic,
                    partition=p.partition,
                    committed_offset=p.committed,
                    high_watermark=p.high_watermark,
                    lag=p.lag,
                )
                for p in status.partitions
            ],
            events_applied=status.applied,
            duplicates_skipped=status.duplicates,
            stale_skipped=status.stale,
            dead_lettered=status.dead_lettered,
            retries=status.retries,
            total_lag=status.total_lag,
            rebalances=status.rebalances,
            pauses=status.pauses,
            paused_reason=status.paused_reason,
            commits_refused=status.commits_refused,
        )


def auth_service(
    store: AccountStore, consumer_status: Callable[[], ConsumerStatus]
) -> ServiceBinding[AuthServicer]:
    """AuthService over `store` and the consumer's status, ready for create_server."""
    servicer = AuthServicer(store, consumer_status)
    return ServiceBinding(SERVICE_NAME, servicer, ERRORS, RULES)


def to_proto(account: Account) -> auth_pb2.Account:
    message = auth_pb2.Account(
        user_id=account.user_id,
        name=account.name,
        email=account.email,
        state=auth_pb2.ACCOUNT_STATE_ACTIVE,
        last_event_id=account.event_id,
    )
    message.create_time.FromDatetime(account.create_time)
    message.update_time.FromDatetime(account.update_time)
    return message
