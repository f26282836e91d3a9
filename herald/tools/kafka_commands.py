"""`herald topics ensure`, `herald events tail` and `herald dlq replay`: the commands that are
Kafka clients, connecting as the services' KAFKA_* settings say."""

from __future__ import annotations

import argparse
import sys

from auth_svc.settings import Settings as AuthSettings
from herald.kafka.acls import grants
from herald.kafka.security import KafkaSecurity
from herald.kafka.topics import DLQ_TOPIC, EVENTS_TOPIC
from herald.lifecycle import shutdown_event
from herald.settings import ServiceSettings
from herald.tools.replay import replay
from herald.tools.tail import tail
from herald.tools.topic_admin import ensure_access, ensure_topics


def add_kafka_client_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """`herald topics ensure`, `herald events tail` and `herald dlq replay`."""
    ensure = _kafka_command(
        commands, "topics", "Herald's topics", "ensure", "create missing topics (idempotent)"
    )
    ensure.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for Kafka")
    ensure.add_argument(
        "--no-acls",
        action="store_true",
        help="with SASL, do not create Herald's ACLs (when something else, Strimzi, owns them)",
    )
    ensure.set_defaults(handler=_topics_ensure)

    tail = _kafka_command(
        commands,
        "events",
        "the events on Herald's topics",
        "tail",
        "print records as JSON lines, protobuf payloads decoded by ce_type",
    )
    tail.add_argument("--topic", default=EVENTS_TOPIC, help=f"default {EVENTS_TOPIC}")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest record")
    tail.add_argument("--follow", action="store_true", help="keep printing new records")
    tail.set_defaults(handler=_events_tail)

    replay = _kafka_command(
        commands,
        "dlq",
        "the dead-letter topic",
        "replay",
        "send dead letters a retry can fix back to the events topic, once",
    )
    replay.add_argument("--topic", default=DLQ_TOPIC, help=f"dead-letter topic ({DLQ_TOPIC})")
    # Never a letter's own herald.dlq.topic header: a forged letter could name any topic.
    replay.add_argument(
        "--to",
        default=ServiceSettings.value_from_env("events_topic"),
        help=f"the topic to send to; default HERALD_EVENTS_TOPIC, else {EVENTS_TOPIC}",
    )
    replay.add_argument(
        "--include-poison",
        action="store_true",
        help="also replay letters whose error says the record is wrong (never a cut one)",
    )
    replay.set_defaults(handler=_dlq_replay)


def _kafka_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    group: str,
    group_help: str,
    action: str,
    action_help: str,
) -> argparse.ArgumentParser:
    """`herald GROUP ACTION`: a command that talks to the Kafka at --bootstrap-servers."""
    actions = commands.add_parser(group, help=group_help).add_subparsers(
        required=True, metavar="ACTION"
    )
    parser = actions.add_parser(action, help=action_help)
    parser.add_argument("--bootstrap-servers", default=_env_bootstrap())
    return parser


def _env_bootstrap() -> str:
    return str(ServiceSettings.value_from_env("kafka_bootstrap_servers"))


def _env_security() -> KafkaSecurity:
    """The services' KAFKA_SECURITY_PROTOCOL and its siblings: a tool authenticates as the
    principal they name (herald-admin for topics and tail, herald-replay for the replay)."""
    return ServiceSettings.kafka_security_from_env()


def _topics_ensure(args: argparse.Namespace) -> int:
    security = _env_security()
    created = ensure_topics(args.bootstrap_servers, timeout_s=args.timeout, security=security)
    print(f"created: {', '.join(created)}" if created else "all topics exist")
    # Only brokers that authenticate clients can tell Herald's principals apart; a
    # PLAINTEXT or SSL client (anonymous) has no ACLs to give.
    if security.sasl and not args.no_acls:
        wanted = grants(auth_group=AuthSettings.value_from_env("consumer_group"))
        count = ensure_access(args.bootstrap_servers, wanted, args.timeout, security=security)
        print(f"ACLs in place: {count}")
    return 0


def _events_tail(args: argparse.Namespace) -> int:
    # Ctrl-C (or SIGTERM) ends --follow cleanly; a plain tail ends at the end of the topic.
    stopping = shutdown_event() if args.follow else None
    tail(
        args.bootstrap_servers,
        args.topic,
        sys.stdout,
        from_beginning=args.from_beginning,
        follow=args.follow,
        stopping=stopping,
        security=_env_security(),
    )
    return 0


def _dlq_replay(args: argparse.Namespace) -> int:
    summary = replay(
        args.bootstrap_servers,
        args.topic,
        to_topic=args.to,
        include_poison=args.include_poison,
        security=_env_security(),
    )
    print(f"{args.topic} to {args.to}: {summary}")
    return 0
