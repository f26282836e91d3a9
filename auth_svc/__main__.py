"""The auth service's composition root: `python -m auth_svc`.

One process, two jobs: a Kafka consumer thread applies events to SQLite, and a gRPC server
serves what they built. Either stopping stops both.
"""

from __future__ import annotations

import logging
import sys
import threading

from confluent_kafka import Consumer

from auth_svc.consumer import EventConsumer
from auth_svc.decoders import DECODERS
from auth_svc.servicer import auth_service
from auth_svc.settings import Settings
from auth_svc.sqlite_store import SqliteAccountStore
from auth_svc.status import StatusBoard
from herald.kafka.sender import KafkaBatchSender
from herald.lifecycle import begin, name_os_thread
from herald.rpc.health import SERVING

logger = logging.getLogger("auth_svc")

# A dead letter must be safely stored before the record's offset moves past it.
DLQ_SEND_TIMEOUT_S = 10


def main() -> int:
    settings = Settings.from_env()
    stopping = begin(settings.log_level)
    store = SqliteAccountStore(settings.database_path)
    tuning = settings.consumer_tuning()
    status = StatusBoard(settings.consumer_group, tuning.max_lag, tuning.status_every_s)
    try:
        # Before any Kafka client: a server that must not start stops everything here.
        server = settings.grpc_server(
            settings.grpc_host, settings.grpc_port, [auth_service(store, status.snapshot)]
        )
        kafka = settings.kafka_security()
    except (ValueError, OSError) as error:  # InsecureListenError among them
        logger.error("not starting: %s", error)
        return 2
    dead_letters = KafkaBatchSender(
        settings.producer_config("auth-svc-dlq", kafka), timeout_s=DLQ_SEND_TIMEOUT_S
    )
    kafka_config = settings.consumer_config(
        settings.consumer_group,
        "auth-svc",
        kafka,
        **{
            "auto.commit.interval.ms": settings.commit_interval_ms,
            "max.poll.interval.ms": settings.max_poll_interval_ms,
        },
    )
    consumer = EventConsumer(
        Consumer({**kafka_config, "on_commit": status.committed}),
        settings.subscription(),
        store=store,
        decoders=DECODERS,
        dead_letters=dead_letters,
        tuning=tuning,
        # Never subscribes, so it never joins the group: it only asks what the group has
        # committed. Committing nothing of its own either.
        lag_client=Consumer(
            settings.consumer_config(
                settings.consumer_group, "auth-svc-lag", kafka, **{"enable.auto.commit": False}
            )
        ),
        status=status,
    )
    failed = threading.Event()

    def consume() -> None:
        name_os_thread()
        try:
            consumer.run(stopping)
        except Exception:
            logger.exception("consumer stopped on an error; shutting down")
            failed.set()
        finally:
            if not stopping.is_set():
                # The loop ended without being asked to: serving without it would be a lie.
                failed.set()
            stopping.set()

    server.start(serving=False)
    consumer_thread = threading.Thread(target=consume, name="kafka-consumer")
    consumer_thread.start()
    logger.info(
        "auth_svc started: gRPC on port %d, store %s, consuming %s as group %s via %s",
        server.port,
        settings.database_path,
        settings.events_topic,
        settings.consumer_group,
        settings.kafka_bootstrap_servers,
    )
    # SERVING once the group has taken this member in (a client that waited for health then
    # sees new accounts appear without a gap), and from then on while the consumer reaches
    # the cluster and keeps up.
    while not consumer.joined.wait(0.2):
        if stopping.is_set():
            break
    else:
        server.set_status(SERVING)
        logger.info("consumer joined group %s; auth_svc is SERVING", settings.consumer_group)
        server.watch(lambda: consumer.healthy(settings.lag_grace_s), stopping, interval_s=1.0)
    stopping.wait()
    # The consumer finishes the batch in hand, commits and leaves the group; then the
    # server lets calls in flight finish.
    consumer_thread.join()
    server.stop(settings.shutdown_grace_s)
    dead_letters.close()
    store.close()
    logger.info("auth_svc stopped")
    return 1 if failed.is_set() else 0


if __name__ == "__main__":
    sys.exit(main())
