"""What auth_svc does when the group moves partitions to or from this member."""

from __future__ import annotations

import logging
import threading

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from auth_svc.status import StatusBoard

logger = logging.getLogger(__name__)


class RebalanceListener:
    """The consumer's on_assign, on_revoke and on_lost callbacks."""

    def __init__(self, status: StatusBoard) -> None:
        # Set once the group has taken this member in (even with no partitions): it serves.
        self.joined = threading.Event()
        self._status = status

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        logger.info("assigned %s", _names(partitions))
        # Every rebalance ends in an assignment (an empty one when nothing changed here).
        if self.joined.is_set():
            self._status.count_rebalance()
        self.joined.set()

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Commit what was applied before the partitions move, so their next owner starts
        # right after it instead of re-reading (harmless, but wasted) records.
        logger.info("revoked %s", _names(partitions))
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as error:
            if error.args[0].code() != KafkaError._NO_OFFSET:
                logger.warning("commit on revoke failed: %s", error)

    def on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Lost, not revoked: another member may own them already, so committing would be wrong.
        logger.warning("lost %s", _names(partitions))
        self._status.count_rebalance()


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "no partitions"
