"""The `herald` command: run a local Kafka, create topics, bring up the whole stack."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from confluent_kafka import KafkaException
from grpc_health.v1.health_pb2 import HealthCheckResponse

from auth_svc.settings import Settings as AuthSettings
from herald.rpc.client import SERVING, health_status
from herald.rpc.tls import ClientTls
from herald.tools.certs import add_credential_commands
from herald.tools.devstack import run_stack
from herald.tools.kafka_commands import add_kafka_client_commands
from herald.tools.localkafka import KafkaLaunchError, LocalKafka, add_secure_argument
from herald.tools.processes import free_ports
from herald.tools.secure_files import SecureFiles
from herald.tools.topic_admin import ensure_topics
from users_svc.settings import Settings as UsersSettings


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args))
    except KafkaException as error:
        print(f"herald: cannot talk to Kafka: {error.args[0].str()}", file=sys.stderr)
        return 1
    except (KafkaLaunchError, TimeoutError, ValueError) as error:
        print(f"herald: {error}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="herald", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    kafka = commands.add_parser("kafka", help="run a local Kafka from the Maven jars")
    kafka_commands = kafka.add_subparsers(required=True, metavar="ACTION")
    start = kafka_commands.add_parser("start", help="start the cluster (or one --node) and wait")
    start.add_argument("--nodes", type=int, choices=(1, 3), default=1, help="cluster size")
    start.add_argument("--node", type=int, help="start only this node again, on its data")
    start.add_argument("--fresh", action="store_true", help="delete earlier data first")
    add_secure_argument(start)
    start.set_defaults(handler=_kafka_start)
    stop = kafka_commands.add_parser("stop", help="stop the cluster (or one --node): SIGTERM")
    stop.add_argument("--node", type=int, help="stop only this node")
    stop.set_defaults(handler=_kafka_stop)
    kill = kafka_commands.add_parser("kill", help="SIGKILL one node, as a crash would")
    kill.add_argument("--node", type=int, required=True)
    kill.set_defaults(handler=_kafka_kill)
    status = kafka_commands.add_parser("status", help="which nodes run, and where")
    status.set_defaults(handler=_kafka_status)
    for sub in (start, stop, kill, status):
        _add_paths(sub)

    add_kafka_client_commands(commands)

    health = commands.add_parser(
        "health", help="exit 0 if a server's gRPC health says SERVING (for container checks)"
    )
    health.add_argument("address", help="host:port of the server")
    health.add_argument("--service", default="", help="a service name; default: the server")
    _tls_arguments(health)
    health.set_defaults(handler=_health)

    add_credential_commands(commands)

    up = commands.add_parser("up", help="a local Kafka plus both services; Ctrl-C stops all")
    up.add_argument("--nodes", type=int, choices=(1, 3), default=1)
    up.add_argument("--users-port", type=int, default=UsersSettings.value_from_env("grpc_port"))
    up.add_argument("--auth-port", type=int, default=AuthSettings.value_from_env("grpc_port"))
    up.add_argument("--free-ports", action="store_true", help="every port one the OS says is free")
    add_secure_argument(up)
    _add_paths(up)
    up.set_defaults(handler=_up)
    return parser


def _add_paths(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--libs",
        type=Path,
        default=Path(os.environ.get("KAFKA_LIBS", ".cache/kafka-libs")),
        help="folder of Kafka jars (`make kafka-jars`); env KAFKA_LIBS",
    )
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=Path(os.environ.get("HERALD_RUN_DIR", ".run")) / "kafka",
        help="where nodes keep config, data and logs; env HERALD_RUN_DIR (+ /kafka)",
    )


def _existing(args: argparse.Namespace) -> LocalKafka | None:
    """The cluster an earlier `herald kafka start` left in the run folder, if any."""
    return LocalKafka.load(libs_dir=args.libs.resolve(), run_dir=args.run_dir.resolve())


def _cluster(
    args: argparse.Namespace, node_count: int | None = None, on_free_ports: bool = False
) -> LocalKafka:
    libs, run_dir = args.libs.resolve(), args.run_dir.resolve()
    existing = LocalKafka.load(libs_dir=libs, run_dir=run_dir)
    secure = args.secure.resolve() if getattr(args, "secure", None) else None
    if existing is not None:
        if (node_count is not None and len(existing.nodes) != node_count) or (
            secure and not existing.security
        ):
            raise KafkaLaunchError(
                f"{run_dir} holds a {len(existing.nodes)}-node "
                f"{'secure' if existing.security else 'plaintext'} cluster; "
                "stop it and use --fresh to start another kind"
            )
        return existing
    if node_count is None:
        raise KafkaLaunchError(
            f"no local cluster in {run_dir}; start one with `herald kafka start`"
        )
    layout = LocalKafka.on_free_ports if on_free_ports else LocalKafka.standard
    return layout(libs_dir=libs, run_dir=run_dir, node_count=node_count, secure=secure)


def _kafka_start(args: argparse.Namespace) -> int:
    if args.fresh:
        previous = _existing(args)
        if previous is not None:
            previous.stop()
            previous.wipe()
    if args.node is not None:
        cluster = _cluster(args)
        cluster.start_node(args.node)
        print(f"node {args.node} started on {cluster.node(args.node).address}")
        return 0
    cluster = _cluster(args, args.nodes)
    seconds = cluster.start()
    created = ensure_topics(cluster.bootstrap_servers, security=cluster.kafka_security())
    print(f"Kafka ready at {cluster.bootstrap_servers} in {seconds:.1f} s")
    if created:
        print(f"created topics: {', '.join(created)}")
    return 0


def _kafka_stop(args: argparse.Namespace) -> int:
    cluster = _existing(args)
    if cluster is None:
        print("no local cluster to stop")
    elif args.node is not None:
        cluster.stop_node(args.node)
    else:
        cluster.stop()
    return 0


def _kafka_kill(args: argparse.Namespace) -> int:
    _cluster(args).kill_node(args.node)
    return 0


def _kafka_status(args: argparse.Namespace) -> int:
    cluster = _existing(args)
    if cluster is None:
        print("no local cluster")
        return 1
    running = 0
    for node_id, pid in cluster.status().items():
        node = cluster.node(node_id)
        state = f"running (pid {pid})" if pid else "stopped"
        print(f"node {node_id}  {node.address}  {state}")
        running += pid is not None
    return 0 if running == len(cluster.nodes) else 1


def _tls_arguments(parser: argparse.ArgumentParser) -> None:
    """grpcurl's names for a client's TLS files; HERALD_TLS_CA_FILE and its siblings by
    default."""
    parser.add_argument("--cacert", type=Path, help="CA to trust: TLS when given")
    parser.add_argument("--cert", type=Path, help="client certificate, for mTLS")
    parser.add_argument("--key", type=Path, help="its private key")


def _client_tls(args: argparse.Namespace) -> ClientTls | None:
    if args.cacert is None:
        return ClientTls.from_env()
    return ClientTls(args.cacert, args.cert, args.key)


def _health(args: argparse.Namespace) -> int:
    status = health_status(args.address, args.service, timeout_s=3.0, tls=_client_tls(args))
    if status == SERVING:
        print("SERVING")
        return 0
    print("no answer" if status is None else HealthCheckResponse.ServingStatus.Name(status))
    return 1


def _up(args: argparse.Namespace) -> int:
    grpcurl = os.environ.get("GRPCURL", "grpcurl")
    users_port, auth_port = free_ports(2) if args.free_ports else (args.users_port, args.auth_port)
    cluster = _cluster(args, args.nodes, on_free_ports=args.free_ports)
    if cluster.security is not None and not args.secure:
        raise KafkaLaunchError(f"{args.run_dir} holds a secure cluster: add --secure")
    secure = SecureFiles.made(args.secure) if args.secure else None
    ports = {"users_port": users_port, "auth_port": auth_port}
    return run_stack(cluster, **ports, grpcurl=grpcurl, secure=secure)


if __name__ == "__main__":
    sys.exit(main())
