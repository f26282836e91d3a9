"""docs/asyncapi.json describes the topics, key, headers and messages the services really use."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from herald.kafka.cloudevents import EventAttributes
from herald.kafka.topics import DLQ_TOPIC, EVENTS_TOPIC
from herald.tools.asyncapi import HEADERS, render
from herald.users.v1 import events_pb2
from tests.conftest import REPO

EVENTS_PROTO = REPO / "protos" / "herald" / "users" / "v1" / "events.proto"


def test_the_committed_document_is_current() -> None:
    assert (REPO / "docs" / "asyncapi.json").read_text() == render(EVENTS_PROTO)


def test_it_names_the_topics_messages_and_every_header_the_services_set() -> None:
    document = json.loads(render(EVENTS_PROTO))
    assert document["asyncapi"] == "3.0.0"
    channels = document["channels"]
    assert {c["address"] for c in channels.values()} == {EVENTS_TOPIC, DLQ_TOPIC}
    names = {m["name"] for m in document["components"]["messages"].values()}
    assert names == {m.full_name for m in events_pb2.DESCRIPTOR.message_types_by_name.values()}
    written = EventAttributes("id", "/src", "type", datetime.now(UTC)).to_headers()
    assert set(HEADERS) == {name for name, _ in written}
    assert document["components"]["schemas"]["CloudEventsHeaders"]["required"] == list(HEADERS)
