"""A local Apache Kafka from the Maven jars, for `make run`, the tests and the bench."""

from herald.tools.localkafka.cluster import LocalKafka, running_cluster
from herald.tools.localkafka.nodes import STANDARD_PORTS, KafkaLaunchError, Node

__all__ = ["STANDARD_PORTS", "KafkaLaunchError", "LocalKafka", "Node", "running_cluster"]
