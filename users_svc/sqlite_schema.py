"""users_svc's SQLite schema: its migrations, in order (never edit or reorder an applied one;
append: herald/storage/sqlite/migrations.py), and how the outbox stores record headers."""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence

MIGRATIONS = (
    # 1: users, the requests that created them (for idempotent retries), and the outbox.
    """
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        email TEXT NOT NULL,
        email_key TEXT NOT NULL UNIQUE,
        version INTEGER NOT NULL,
        create_time_us INTEGER NOT NULL,
        update_time_us INTEGER NOT NULL
    );
    CREATE TABLE create_requests (
        request_id TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE
    );
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL,
        topic TEXT NOT NULL,
        key BLOB NOT NULL,
        value BLOB NOT NULL,
        headers TEXT NOT NULL,
        created_at_us INTEGER NOT NULL,
        published_at_us INTEGER
    );
    CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at_us IS NULL;
    CREATE INDEX outbox_published ON outbox (published_at_us) WHERE published_at_us IS NOT NULL;
    """,
    # 2: erasure (DeleteUser). An erased user's row leaves `users` (its name, email and email
    # key with it) and a tombstone takes its place in `deleted_users`. Create requests outlive
    # their user (without the fingerprint, which is derived from name and email), so they
    # lose their foreign key; a table is rebuilt to drop one. Delete requests answer retries.
    # `outbox.key` is indexed to find a user's rows; `erase_when_published` marks the rows
    # pending when their user was erased, to be erased once they are published.
    """
    CREATE TABLE deleted_users (
        id TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        delete_time_us INTEGER NOT NULL
    );
    CREATE TABLE delete_requests (
        request_id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES deleted_users (id)
    );
    CREATE TABLE create_requests_2 (
        request_id TEXT PRIMARY KEY,
        fingerprint TEXT,
        user_id TEXT NOT NULL
    );
    INSERT INTO create_requests_2 (request_id, fingerprint, user_id)
        SELECT request_id, fingerprint, user_id FROM create_requests;
    DROP TABLE create_requests;
    ALTER TABLE create_requests_2 RENAME TO create_requests;
    CREATE INDEX create_requests_user ON create_requests (user_id);
    ALTER TABLE outbox ADD COLUMN erase_when_published INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX outbox_key ON outbox (key);
    CREATE INDEX outbox_to_erase ON outbox (seq) WHERE erase_when_published = 1;
    """,
)


# A header as the outbox stores it: the name's length (1 byte), the value's (2 bytes), the
# name, the value. Any bytes fit, and encoding and decoding one record's six CloudEvents
# headers costs ~4 µs against ~11 µs for the JSON text they were stored as before.
_LENGTHS = struct.Struct("!BH")


def encode_headers(headers: Sequence[tuple[str, str | bytes | None]]) -> bytes:
    parts: list[bytes] = []
    for name, value in headers:
        raw_name = name.encode()
        raw = value.encode() if isinstance(value, str) else value or b""
        parts += (_LENGTHS.pack(len(raw_name), len(raw)), raw_name, raw)
    return b"".join(parts)


def decode_headers(encoded: bytes | str) -> list[tuple[str, str | bytes | None]]:
    """The headers of an outbox row: binary (above), or JSON text, as rows written before the
    binary form and erased rows (`[["ce_id", "<id>"]]`) hold them."""
    if isinstance(encoded, str):
        return [(name, value.encode()) for name, value in json.loads(encoded)]
    headers: list[tuple[str, str | bytes | None]] = []
    at, end = 0, len(encoded)
    while at < end:
        name_length, value_length = _LENGTHS.unpack_from(encoded, at)
        at += _LENGTHS.size
        name_end = at + name_length
        headers.append((encoded[at:name_end].decode(), encoded[name_end : name_end + value_length]))
        at = name_end + value_length
    return headers
