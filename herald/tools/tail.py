"""`herald events tail`: the records on a topic as JSON lines, with protobuf payloads decoded.

Each record's `ce_type` header names its protobuf message, so the value is shown in
protobuf's canonical JSON mapping; kcat and kafka-console-consumer can only show bytes.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any, TextIO

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, Message, TopicPartition
from google.protobuf import json_format, symbol_database
from google.protobuf.message import DecodeError

from herald.kafka.config import consumer_config
from herald.kafka.records import header_values
from herald.kafka.security import PLAINTEXT, KafkaSecurity
from herald.timestamps import format_time

# Importing the generated modules registers their messages with the symbol database.
from herald.users.v1 import events_pb2  # noqa: F401


def tail(
    bootstrap_servers: str,
    topic: str,
    out: TextIO,
    *,
    from_beginning: bool = False,
    follow: bool = False,
    stopping: threading.Event | None = None,
    timeout_s: float = 30.0,
    security: KafkaSecurity = PLAINTEXT,
) -> int:
    """Print the topic's records; without `follow`, stop at the end it had when we started.

    Returns the number of records printed.
    """
    # A throwaway group that commits nothing: tailing never moves anyone's offsets. It only
    # assigns partitions, so it never joins the group either.
    config = consumer_config(
        bootstrap_servers,
        f"herald-tail-{uuid.uuid4()}",
        "herald-tail",
        security,
        **{"enable.auto.commit": False},
    )
    consumer = Consumer(config)
    stopping = stopping or threading.Event()
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
        if metadata.error is not None:
            raise ValueError(f"topic {topic}: {metadata.error.str()}")
        partitions = sorted(metadata.partitions)
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1]
            for p in partitions
        }
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topic, p, start) for p in partitions])
        positions = {p: 0 if from_beginning else ends[p] for p in partitions}
        printed = 0
        deadline = time.monotonic() + timeout_s
        while not stopping.is_set():
            if not follow and all(positions[p] >= ends[p] for p in partitions):
                break
            message = consumer.poll(0.2)
            if message is None or message.error() is not None:
                if not follow and time.monotonic() > deadline:
                    raise TimeoutError(f"could not read {topic} to its end in {timeout_s:g} s")
                continue
            positions[message.partition() or 0] = (message.offset() or 0) + 1
            out.write(json.dumps(describe(message), ensure_ascii=False) + "\n")
            out.flush()
            printed += 1
        return printed
    finally:
        consumer.close()


def describe(message: Message) -> dict[str, Any]:
    """One record as a JSON-ready dict: where it is, its headers, and its decoded payload."""
    headers = header_values(message.headers())
    _kind, timestamp_ms = message.timestamp()
    value = message.value() or b""
    record: dict[str, Any] = {
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "timestamp": format_time(datetime.fromtimestamp(timestamp_ms / 1000, UTC)),
        "key": _text(message.key()),
        "headers": headers,
    }
    event_type = headers.get("ce_type", "")
    try:
        event_class = symbol_database.Default().GetSymbol(event_type)
        record["payload"] = json_format.MessageToDict(event_class.FromString(value))
    except (KeyError, DecodeError) as error:
        record["payload"] = None
        record["error"] = f"cannot decode as {event_type or 'an unknown type'}: {error}"
        record["value_base64"] = base64.b64encode(value).decode()
    return record


def _text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode()
