"""A local Apache Kafka from the Maven jars, for `make run`, the tests and the bench."""

from herald.tools.localkafka.cluster import LocalKafka, running_cluster
from herald.tools.localkafka.nodes import STANDARD_PORTS, KafkaLaunchError, Node
from herald.tools.localkafka.secure import PRINCIPALS, add_secure_argument

__all__ = [
    "PRINCIPALS",
    "STANDARD_PORTS",
    "KafkaLaunchError",
    "LocalKafka",
    "Node",
    "add_secure_argument",
    "running_cluster",
]
