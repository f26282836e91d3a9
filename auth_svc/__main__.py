"""The auth service's composition root: `python -m auth_svc`.

One process, two jobs: a Kafka consumer thread applies events, and a gRPC server serves
what they built. Either stopping stops both.
"""

from __future__ import annotations

import logging
import sys
import threading

import grpc
from confluent_kafka import Consumer
from grpc_health.v1 import health_pb2

from auth_svc.accounts import InMemoryAccountStore
from auth_svc.consumer import EventConsumer
from auth_svc.handlers import HANDLERS
from auth_svc.servicer import AuthServicer
from auth_svc.settings import Settings
from herald.auth.v1 import auth_pb2, auth_pb2_grpc
from herald.grpc_server import create_server
from herald.kafka_config import consumer_config
from herald.lifecycle import configure_logging, shutdown_event

logger = logging.getLogger("auth_svc")


def main() -> int:
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    stopping = shutdown_event()
    store = InMemoryAccountStore()
    servicer = AuthServicer(store)

    def register(server: grpc.Server) -> None:
        auth_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server)

    server = create_server(
        address=f"[::]:{settings.grpc_port}",
        service_names=[auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name],
        register=register,
    )

    def report_serving() -> None:
        # SERVING once the group has given this member its share of partitions (even none):
        # a client that waits for health sees new accounts appear without a gap.
        server.set_status(health_pb2.HealthCheckResponse.SERVING)
        logger.info("consumer joined group %s; auth_svc is SERVING", settings.consumer_group)

    consumer = EventConsumer(
        Consumer(
            consumer_config(
                settings.kafka_bootstrap_servers, settings.consumer_group, client_id="auth-svc"
            )
        ),
        topic=settings.events_topic,
        store=store,
        handlers=HANDLERS,
        on_first_assignment=report_serving,
    )
    failed = threading.Event()

    def consume() -> None:
        try:
            consumer.run(stopping)
        except Exception:
            logger.exception("consumer stopped on an error; shutting down")
            failed.set()
            stopping.set()

    server.start(serving=False)
    consumer_thread = threading.Thread(target=consume, name="kafka-consumer")
    consumer_thread.start()
    logger.info(
        "auth_svc started: gRPC on port %d, consuming %s as group %s via %s",
        server.port,
        settings.events_topic,
        settings.consumer_group,
        settings.kafka_bootstrap_servers,
    )
    stopping.wait()
    server.stop(settings.shutdown_grace_s)
    consumer_thread.join()
    logger.info("auth_svc stopped")
    return 1 if failed.is_set() else 0


if __name__ == "__main__":
    sys.exit(main())
