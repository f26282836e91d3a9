"""User ids and event ids: how they are made, and what a well-formed one looks like."""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid

# Event ids are derived from "<user id>/<version>" in this namespace: every copy of one change
# carries the same id, whoever publishes it and however often.
EVENT_ID_NAMESPACE = uuid.UUID("0b7e9a4c-3f5d-5e53-9c1e-6a8f2d4b7c10")


def new_user_id() -> str:
    """A UUIDv7 (RFC 9562, section 5.7): Unix milliseconds in the first 48 bits, random after.

    Ids made later sort later, so both services' primary-key indexes grow at their right edge
    instead of taking each insert on a random page: with random ids (UUIDv4), auth_svc spent
    twice the CPU per event, most of it writing index pages (measured: bench/README.md).
    Python 3.14's uuid.uuid7 makes the same ids.
    """
    millis = time.time_ns() // 1_000_000
    return _with_version(millis << 80 | int.from_bytes(os.urandom(10)), 7)


_NAMESPACE = EVENT_ID_NAMESPACE.bytes


def event_id(user_id: str, version: int) -> str:
    """The id of the event that takes `user_id` to `version`: always the same for both.

    A UUIDv8 (RFC 9562, section 5.8): SHA-1 of the namespace and "<user id>/<version>", as a
    UUIDv5 is, but its first 48 bits are the user id's UUIDv7 milliseconds when it has them, so
    events of users created later sort later in auth_svc's inbox index too.
    """
    # Built on the hex digest as text: auth_svc derives the id of every event it checks, and
    # string slicing costs a third of the integer arithmetic that gives the same id.
    name = _NAMESPACE + f"{user_id}/{version}".encode()
    h = hashlib.sha1(name, usedforsecurity=False).hexdigest()
    millis = _uuid7_millis(user_id)
    if millis is not None and 0 <= millis < 1 << 48:
        h = f"{millis:012x}{h[12:32]}"
    variant = "89ab"[int(h[16], 16) & 0x3]  # RFC 9562 variant: the top two bits are 10
    return f"{h[:8]}-{h[8:12]}-8{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"


def _uuid7_millis(text: str) -> int | None:
    """The milliseconds of a UUIDv7 in its canonical text form; None for any other text."""
    if len(text) != 36 or text[14] != "7" or text[19] not in "89abAB":
        return None
    try:
        return int(text[:8] + text[9:13], 16)
    except ValueError:
        return None


def _with_version(value: int, version: int) -> str:
    """`value` as a UUID's canonical text, with its version and variant (RFC 9562) bits set.

    Formatted by hand: building a uuid.UUID to print it doubled the cost of an id.
    """
    value &= ~(0xF << 76 | 0x3 << 62) & (1 << 128) - 1
    h = f"{value | version << 76 | 0x2 << 62:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# The canonical text of a UUID: five groups of lower-case hex digits. Matching it costs a
# tenth of parsing the text with uuid.UUID, and auth_svc checks two ids per event.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def uuid_problem(text: str) -> str | None:
    """None for a UUID in its canonical form (36 lower-case hex digits and hyphens); else what
    is wrong, without repeating the text."""
    if _CANONICAL_UUID.fullmatch(text):
        return None
    if len(text) != 36:
        return "must be a UUID in its canonical 36-character form"
    try:
        uuid.UUID(text)
    except ValueError:
        return "must be a UUID such as 123e4567-e89b-12d3-a456-426614174000"
    return "must be a UUID in its canonical form, lower case"
