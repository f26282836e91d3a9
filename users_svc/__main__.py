"""The users service's composition root: `python -m users_svc`."""

from __future__ import annotations

import logging
import sys

import grpc

from herald.grpc_server import create_server
from herald.kafka_config import producer_config
from herald.lifecycle import configure_logging, shutdown_event
from herald.producer import DeliveringProducer
from herald.users.v1 import users_pb2, users_pb2_grpc
from users_svc.publisher import KafkaEventPublisher
from users_svc.repository import InMemoryUserRepository
from users_svc.servicer import UserServicer
from users_svc.settings import Settings

logger = logging.getLogger("users_svc")


def main() -> int:
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    stopping = shutdown_event()
    producer = DeliveringProducer(
        producer_config(
            settings.kafka_bootstrap_servers,
            client_id="users-svc",
            # librdkafka gives up on a record when CreateUser stops waiting for it, so a call
            # that answered UNAVAILABLE does not publish much later behind the client's back.
            **{"message.timeout.ms": int(settings.publish_timeout_s * 1000)},
        )
    )
    servicer = UserServicer(
        users=InMemoryUserRepository(),
        publisher=KafkaEventPublisher(producer, settings.publish_timeout_s),
        events_topic=settings.events_topic,
        event_source=settings.event_source,
    )

    def register(server: grpc.Server) -> None:
        users_pb2_grpc.add_UserServiceServicer_to_server(servicer, server)

    server = create_server(
        address=f"[::]:{settings.grpc_port}",
        service_names=[users_pb2.DESCRIPTOR.services_by_name["UserService"].full_name],
        register=register,
    )
    server.start()
    logger.info(
        "users_svc ready: gRPC on port %d, publishing to %s via %s",
        server.port,
        settings.events_topic,
        settings.kafka_bootstrap_servers,
    )
    stopping.wait()
    server.stop(settings.shutdown_grace_s)
    producer.close()
    logger.info("users_svc stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
