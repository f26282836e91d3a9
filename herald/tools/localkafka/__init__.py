"""A local Apache Kafka from the Maven jars (moved here whole; split in the next commit)."""

from herald.tools.localkafka.cluster import (
    STANDARD_PORTS,
    KafkaLaunchError,
    LocalKafka,
    Node,
    free_ports,
    running_cluster,
)

__all__ = [
    "STANDARD_PORTS",
    "KafkaLaunchError",
    "LocalKafka",
    "Node",
    "free_ports",
    "running_cluster",
]
