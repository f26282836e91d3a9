"""A unit of work on users_svc's SQLite database: the reads and writes one call makes inside
its group-committed transaction (users_svc.store.UnitOfWork), and the row mapping the store's
reads share."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from herald.kafka.records import Record
from herald.timestamps import from_micros, to_micros
from users_svc.model import EmailTakenError, Tombstone, User, email_key
from users_svc.sqlite_schema import encode_headers
from users_svc.store import CreateRequest, DeleteRequest

# What an erased user's published outbox row keeps: its seq, key and event id, nothing else.
ERASED = (
    "value = x'', headers = json_array(json_array('ce_id', event_id)), erase_when_published = 0"
)


class SqliteUnitOfWork:
    def __init__(self, connection: sqlite3.Connection, erased: threading.Event) -> None:
        self._connection = connection
        self._erased = erased  # set by a delete: the WAL holds what it removed

    def get_user(self, user_id: str) -> User | None:
        return get_user_row(self._connection, user_id)

    def find_request(self, request_id: str) -> CreateRequest | None:
        row = self._connection.execute(
            "SELECT request_id, fingerprint, user_id FROM create_requests WHERE request_id = ?",
            (request_id,),
        ).fetchone()
        return None if row is None else CreateRequest(*row)

    def add_user(self, user: User, request: CreateRequest | None) -> None:
        with _email_uniqueness():
            self._connection.execute(
                "INSERT INTO users (id, name, email, email_key, version, create_time_us,"
                " update_time_us) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    user.id,
                    user.name,
                    user.email,
                    email_key(user.email),
                    user.version,
                    to_micros(user.create_time),
                    to_micros(user.update_time),
                ),
            )
        if request is not None:
            self._connection.execute(
                "INSERT INTO create_requests (request_id, fingerprint, user_id) VALUES (?, ?, ?)",
                (request.request_id, request.fingerprint, request.user_id),
            )

    def save_user(self, user: User) -> None:
        with _email_uniqueness():
            self._connection.execute(
                "UPDATE users SET name = ?, email = ?, email_key = ?, version = ?,"
                " update_time_us = ? WHERE id = ?",
                (
                    user.name,
                    user.email,
                    email_key(user.email),
                    user.version,
                    to_micros(user.update_time),
                    user.id,
                ),
            )

    def get_tombstone(self, user_id: str) -> Tombstone | None:
        return get_tombstone_row(self._connection, user_id)

    def find_delete_request(self, request_id: str) -> DeleteRequest | None:
        row = self._connection.execute(
            "SELECT request_id, user_id FROM delete_requests WHERE request_id = ?",
            (request_id,),
        ).fetchone()
        return None if row is None else DeleteRequest(*row)

    def delete_user(self, tombstone: Tombstone, request: DeleteRequest | None) -> None:
        self._erased.set()  # before the commit: a mark_published after it must see it
        execute, user_id, key = self._connection.execute, tombstone.id, tombstone.id.encode()
        execute("DELETE FROM users WHERE id = ?", (user_id,))
        execute(
            "INSERT INTO deleted_users (id, version, delete_time_us) VALUES (?, ?, ?)",
            (user_id, tombstone.version, to_micros(tombstone.delete_time)),
        )
        execute("UPDATE create_requests SET fingerprint = NULL WHERE user_id = ?", (user_id,))
        if request is not None:
            execute(
                "INSERT INTO delete_requests (request_id, user_id) VALUES (?, ?)",
                (request.request_id, request.user_id),
            )
        execute(
            f"UPDATE outbox SET {ERASED}"  # noqa: S608 - a constant
            " WHERE key = ? AND published_at_us IS NOT NULL",
            (key,),
        )
        # Still to be sent as committed, in order: erased by mark_published once sent.
        execute(
            "UPDATE outbox SET erase_when_published = 1 WHERE key = ? AND published_at_us IS NULL",
            (key,),
        )

    def append_event(self, record: Record, event_id: str) -> None:
        self._connection.execute(
            "INSERT INTO outbox (event_id, topic, key, value, headers, created_at_us)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                event_id,
                record.topic,
                record.key,
                record.value,
                encode_headers(record.headers),
                to_micros(datetime.now(UTC)),
            ),
        )


SELECT_USER = "SELECT id, name, email, create_time_us, update_time_us, version FROM users"


def get_user_row(connection: sqlite3.Connection, user_id: str) -> User | None:
    row = connection.execute(f"{SELECT_USER} WHERE id = ?", (user_id,)).fetchone()
    return None if row is None else user_from_row(row)


def user_from_row(row: tuple[Any, ...]) -> User:
    id_, name, email, created, updated, version = row
    return User(id_, name, email, from_micros(created), from_micros(updated), version)


SELECT_TOMBSTONE = "SELECT id, version, delete_time_us FROM deleted_users"


def get_tombstone_row(connection: sqlite3.Connection, user_id: str) -> Tombstone | None:
    row = connection.execute(f"{SELECT_TOMBSTONE} WHERE id = ?", (user_id,)).fetchone()
    return None if row is None else tombstone_from_row(row)


def tombstone_from_row(row: tuple[Any, ...]) -> Tombstone:
    id_, version, deleted = row
    return Tombstone(id_, version, from_micros(deleted))


@contextmanager
def _email_uniqueness() -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as error:
        if "users.email_key" in str(error):
            raise EmailTakenError("another user has this email") from None
        raise
