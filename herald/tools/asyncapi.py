"""The AsyncAPI 3 document of Herald's event topics, generated from the code that defines them.

`make protos` writes it to docs/asyncapi.json and `make check-protos` fails when it is stale,
so other teams read the same topic names, key, headers and messages the services use.
Run: python -m herald.tools.asyncapi protos/herald/users/v1/events.proto
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from herald.kafka import deadletter
from herald.kafka.cloudevents import CONTENT_TYPE, SPEC_VERSION
from herald.kafka.topics import DLQ_TOPIC, EVENTS_TOPIC, TOPICS
from herald.tools.localkafka import STANDARD_PORTS
from herald.users.v1 import events_pb2

PROTOBUF_FORMAT = "application/vnd.google.protobuf;version=3"
HEADERS = {
    "ce_specversion": f"CloudEvents spec version, always {SPEC_VERSION}.",
    "ce_id": "The event id (also the payload's event_id): the same for every copy of one change.",
    "ce_source": "Who published the event, e.g. /herald/users-svc.",
    "ce_type": "The payload's protobuf message, by full name: pick the decoder by it.",
    "ce_time": "When the change happened, RFC 3339 in UTC.",
    "content-type": f"Always {CONTENT_TYPE}.",
}


def document(events_proto: str) -> dict[str, Any]:
    partitions = {spec.name: spec.partitions for spec in TOPICS}
    messages = {
        message.name: {
            "name": message.full_name,
            "title": message.name,
            "contentType": CONTENT_TYPE,
            "headers": {"$ref": "#/components/schemas/CloudEventsHeaders"},
            "payload": {"schemaFormat": PROTOBUF_FORMAT, "schema": events_proto},
            "x-protobuf-message": message.full_name,
            "bindings": {
                "kafka": {
                    "key": {"type": "string", "description": "The user id (UUID)."},
                    "bindingVersion": "0.5.0",
                }
            },
        }
        for message in events_pb2.DESCRIPTOR.message_types_by_name.values()
    }
    refs = {name: {"$ref": f"#/components/messages/{name}"} for name in messages}
    first_port, *other_ports = (broker for broker, _controller in STANDARD_PORTS)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Herald user events",
            "version": "1.0.0",
            "description": (
                "Every change users_svc accepts, as CloudEvents 1.0 in Kafka binary mode: the "
                "record value is the protobuf message named by the ce_type header, the key is "
                "the user id so a user's events keep their order, and each event carries the "
                "user's whole state and version. Copies can occur (at-least-once): recognise "
                "them by event_id, or keep the highest version seen."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "local": {
                "host": f"127.0.0.1:{first_port}",
                "protocol": "kafka",
                "description": (
                    "`make run` or `make run-cluster` "
                    f"(also {', '.join(f':{port}' for port in other_ports)}); docker compose "
                    "publishes no Kafka port (its brokers are kafka-1..3:19092, SASL_SSL)."
                ),
            }
        },
        "channels": {
            "userEvents": {
                "address": EVENTS_TOPIC,
                "description": "One topic for all of a user's events, told apart by ce_type.",
                "messages": refs,
                "bindings": {
                    "kafka": {
                        "topic": EVENTS_TOPIC,
                        "partitions": partitions[EVENTS_TOPIC],
                        "bindingVersion": "0.5.0",
                    }
                },
            },
            "userEventsDeadLetters": {
                "address": DLQ_TOPIC,
                "description": (
                    "Records auth_svc could not apply, as they were, plus "
                    f"{_dead_letter_headers()}."
                ),
                "messages": refs,
                "bindings": {
                    "kafka": {
                        "topic": DLQ_TOPIC,
                        "partitions": partitions[DLQ_TOPIC],
                        "bindingVersion": "0.5.0",
                    }
                },
            },
        },
        "operations": {
            "publishUserEvents": {
                "action": "send",
                "channel": {"$ref": "#/channels/userEvents"},
                "summary": "users_svc publishes each committed change (transactional outbox).",
                "messages": [{"$ref": f"#/channels/userEvents/messages/{n}"} for n in messages],
            },
            "applyUserEvents": {
                "action": "receive",
                "channel": {"$ref": "#/channels/userEvents"},
                "summary": "auth_svc (consumer group auth-svc) applies them once in effect.",
                "messages": [{"$ref": f"#/channels/userEvents/messages/{n}"} for n in messages],
            },
        },
        "components": {
            "messages": messages,
            "schemas": {
                "CloudEventsHeaders": {
                    "type": "object",
                    "required": list(HEADERS),
                    "properties": {
                        name: {"type": "string", "description": text}
                        for name, text in HEADERS.items()
                    },
                }
            },
        },
    }


def _dead_letter_headers() -> str:
    """herald.dlq.topic, .partition, … and .error.message headers: the names the writer uses."""
    first, *others, last = deadletter.HEADERS
    shortened = [name.removeprefix(deadletter.PREFIX) for name in (*others, last)]
    return f"{first}, .{', .'.join(shortened[:-1])} and .{shortened[-1]} headers"


def render(events_proto_path: Path) -> str:
    return json.dumps(document(events_proto_path.read_text()), indent=2) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render(Path(sys.argv[1])))
