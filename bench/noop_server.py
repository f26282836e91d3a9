"""The baseline server: a UserService on Herald's own server stack that does no work.

`python -m bench.noop_server` serves CreateUser with one fixed user, built once, through the
same `create_server` (grpc.aio, health, reflection, limits) users_svc uses. What
CreateUser costs beyond this is the cost of Herald's own work: validation, the store, the
outbox, the events.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

import grpc

from herald.lifecycle import configure_logging, shutdown_event
from herald.rpc.errors import Context
from herald.rpc.server import ServiceBinding
from herald.users.v1 import users_pb2, users_pb2_grpc
from users_svc.servicer import ERRORS, SERVICE_NAME
from users_svc.settings import Settings


class NoOpUserService(users_pb2_grpc.UserServiceServicer):
    def __init__(self) -> None:
        user = users_pb2.User(id="00000000-0000-4000-8000-000000000000", name="Bench User")
        user.email = "bench@example.com"
        user.create_time.FromDatetime(datetime(2026, 1, 1, tzinfo=UTC))
        user.update_time.CopyFrom(user.create_time)
        self._response = users_pb2.CreateUserResponse(user=user)

    async def CreateUser(
        self, request: users_pb2.CreateUserRequest, context: Context
    ) -> users_pb2.CreateUserResponse:
        return self._response

    async def GetUser(
        self, request: users_pb2.GetUserRequest, context: Context
    ) -> users_pb2.GetUserResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the no-op server only creates")

    async def UpdateUser(
        self, request: users_pb2.UpdateUserRequest, context: Context
    ) -> users_pb2.UpdateUserResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the no-op server only creates")

    async def DeleteUser(
        self, request: users_pb2.DeleteUserRequest, context: Context
    ) -> users_pb2.DeleteUserResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the no-op server only creates")


def main() -> int:
    configure_logging(os.environ.get("LOG_LEVEL", "WARNING"))
    stopping = shutdown_event()
    service = ServiceBinding(SERVICE_NAME, NoOpUserService(), ERRORS)
    settings = Settings.from_env()
    # Made as users_svc makes its server (limits, TLS, tokens), so both refuse load alike.
    server = settings.grpc_server(settings.grpc_host, settings.grpc_port, [service])
    server.start()
    stopping.wait()
    server.stop(1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
