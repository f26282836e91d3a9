"""UserDeleted as auth_svc reads it: decoded into a tombstone only when it passes the rules a
created or updated event passes, so that a forged delete cannot erase an account; and shown
decoded by `herald events tail`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from auth_svc.accounts import RecordPosition
from auth_svc.decoders import (
    DECODERS,
    TOMBSTONE_CREATE_TIME,
    InvalidEventError,
    PoisonRecordError,
    Router,
    user_deleted,
)
from herald.contract.events import MAX_VERSION, USERS_SVC_SOURCE
from herald.contract.ids import event_id
from herald.tools.tail import describe
from tests.erasure_support import Event, deleted, message
from tests.support import uid

NOW = datetime(2026, 4, 1, tzinfo=UTC)
U1 = uid("erased")
ROUTER = Router(DECODERS, {USERS_SVC_SOURCE})
POSITION = RecordPosition("events", 0, 0)


def test_a_delete_decodes_into_a_tombstone_without_personal_data() -> None:
    account = user_deleted(deleted(U1, 3).SerializeToString(), NOW)
    assert account.deleted
    assert (account.user_id, account.version, account.event_id) == (U1, 3, event_id(U1, 3))
    assert (account.name, account.email, account.create_time) == ("", "", TOMBSTONE_CREATE_TIME)
    assert account.update_time == NOW


def test_a_consistent_delete_record_is_routed_to_its_decoder() -> None:
    decoded = ROUTER.decode(message(deleted(U1, 2)), POSITION, NOW)
    assert decoded.event_type == "herald.users.v1.UserDeleted"
    assert decoded.account.deleted
    assert decoded.account.version == 2


@pytest.mark.parametrize(
    ("event", "forged", "problem"),
    [
        # A delete follows at least the creation: version 1 (or 0, or past the bound) is forged.
        (deleted(U1, 1), {}, "UserDeleted has version 1; deletes run from 2"),
        (deleted(U1, 0), {}, "UserDeleted has version 0"),
        (deleted(U1, MAX_VERSION + 1), {}, f"UserDeleted has version {MAX_VERSION + 1}"),
        (deleted(U1, 2**63 - 1), {}, "UserDeleted has version"),
        # An id of its own, or the id of another version, is not one users_svc derives.
        (deleted(U1, 2, event_id_=event_id(U1, 3)), {}, "event_id: is not the id derived"),
        (deleted(U1, 2, event_id_=uid("made-up")), {}, "event_id: is not the id derived"),
        (deleted("not-a-uuid", 2), {"key": "not-a-uuid"}, "user_id: "),
        (deleted("", 2), {"key": ""}, "user_id: is required"),
        # The envelope: another source, another key.
        (deleted(U1, 2), {"source": "/somebody/else"}, "ce_source is not an allowed source"),
        (deleted(U1, 2), {"key": uid("somebody")}, "record key differs from the event's user_id"),
    ],
)
def test_a_forged_delete_is_poison_with_its_reason(
    event: Event, forged: dict[str, str], problem: str
) -> None:
    forgery = message(event, key=forged.get("key"), source=forged.get("source", USERS_SVC_SOURCE))
    with pytest.raises(PoisonRecordError, match=problem):
        ROUTER.decode(forgery, POSITION, NOW)


def test_a_delete_whose_ce_id_is_not_its_event_id_is_poison() -> None:
    record = message(deleted(U1, 2), ce_id=event_id(U1, 5))
    with pytest.raises(PoisonRecordError, match="ce_id header differs"):
        ROUTER.decode(record, POSITION, NOW)


def test_a_delete_time_out_of_range_is_invalid() -> None:
    event = deleted(U1, 2)
    event.delete_time.seconds = 2**62
    with pytest.raises(InvalidEventError, match="invalid delete_time"):
        user_deleted(event.SerializeToString(), NOW)


def test_events_tail_shows_a_delete_decoded() -> None:
    shown = describe(message(deleted(U1, 4)))
    assert "error" not in shown
    assert shown["headers"]["ce_type"] == "herald.users.v1.UserDeleted"
    assert shown["payload"] == {
        "eventId": event_id(U1, 4),
        "userId": U1,
        "version": "4",
        "deleteTime": "2026-03-01T00:00:00Z",
    }
