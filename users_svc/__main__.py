"""The users service's composition root: `python -m users_svc`.

The gRPC server commits users and their events to SQLite; the outbox relay, a thread of the
same process, publishes the events to Kafka. Kafka being down delays events, never calls.
"""

from __future__ import annotations

import logging
import sys
import threading
from datetime import timedelta

from herald.kafka.sender import KafkaBatchSender
from herald.lifecycle import begin, name_os_thread
from herald.storage.errors import StoreUnavailableError
from users_svc.application import UserApplication
from users_svc.events import EventRecordFactory
from users_svc.relay import OutboxRelay
from users_svc.servicer import user_service
from users_svc.settings import Settings
from users_svc.sqlite_store import SqliteUserStore

logger = logging.getLogger("users_svc")


def main() -> int:
    settings = Settings.from_env()
    stopping = begin(settings.log_level)
    store = SqliteUserStore(settings.database_path)
    try:
        # Before the producer: unusable Kafka credentials stop the start with their reason.
        kafka = settings.kafka_security()
        sender = KafkaBatchSender(
            settings.producer_config("users-svc-relay", kafka), timeout_s=settings.relay_timeout_s
        )
        relay = OutboxRelay(
            store,
            sender,
            batch_size=settings.relay_batch_size,
            retention=timedelta(seconds=settings.outbox_retention_s),
        )
        users = UserApplication(
            store,
            EventRecordFactory(topic=settings.events_topic, source=settings.event_source),
            on_event=relay.wake,
        )
        server = settings.grpc_server(settings.grpc_host, settings.grpc_port, [user_service(users)])
    except (ValueError, OSError) as error:  # InsecureListenError among them
        logger.error("not starting: %s", error)
        return 2
    relay_stopping = threading.Event()

    def relay_run() -> None:
        name_os_thread()
        relay.run(relay_stopping)

    relay_thread = threading.Thread(target=relay_run, name="outbox-relay")
    relay_thread.start()
    server.start()

    def healthy() -> bool:
        # Kafka being down is not unhealthy here: calls still succeed and the outbox keeps
        # the events. A dead relay or an unusable store is.
        try:
            store.ping()
        except StoreUnavailableError:
            return False
        return relay_thread.is_alive()

    server.watch(healthy, stopping)
    logger.info(
        "users_svc ready: gRPC on port %d, store %s, relaying to %s via %s",
        server.port,
        settings.database_path,
        settings.events_topic,
        settings.kafka_bootstrap_servers,
    )
    stopping.wait()
    # Calls first (they add rows), then the relay drains what it can, then the producer.
    server.stop(settings.shutdown_grace_s)
    relay_stopping.set()
    relay.wake()
    relay_thread.join()
    sender.close()
    store.close()
    logger.info("users_svc stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
