"""What a user is, which values are acceptable, and the rules for changing one.

No gRPC, Kafka or SQL here. Text is trimmed and NFC-normalised before it is checked or stored,
so the same name typed on two keyboards is stored the same way; any script is welcome.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

MAX_NAME_LENGTH = 200
# RFC 5321 limits: a whole address travels in 254 characters, its local part in 64.
MAX_EMAIL_LENGTH = 254
MAX_LOCAL_PART_LENGTH = 64
UPDATABLE_FIELDS = ("name", "email")

# Deliberately plain: one @, no spaces, quotes or brackets in the local part, a dotted
# domain of letters, digits and hyphens in any script. Full RFC 5322 syntax admits
# addresses no mail system delivers to; a confirmation mail is the only real check.
_LOCAL_PART = re.compile(r"[^\s@\"(),:;<>\[\]\\]+")
_DOMAIN_LABEL = re.compile(r"[^\W_](?:(?:[^\W_]|-){0,61}[^\W_])?")
# Zero-width (non-)joiners are format characters that Persian, Indic scripts and emoji need;
# other format characters (bidi overrides, say) only serve to make text look like other text.
_ALLOWED_FORMAT_CHARACTERS = {"\u200c", "\u200d"}
_FORBIDDEN_CATEGORIES = {"Cc", "Cs", "Co", "Cn", "Zl", "Zp"}

# Event ids are derived from "<user id>/<version>" in this namespace: every copy of one change
# carries the same id, whoever publishes it and however often.
EVENT_ID_NAMESPACE = uuid.UUID("0b7e9a4c-3f5d-5e53-9c1e-6a8f2d4b7c10")


@dataclass(frozen=True)
class User:
    id: str
    name: str
    email: str
    create_time: datetime
    update_time: datetime
    version: int

    @property
    def event_id(self) -> str:
        """The id of the event that announced this version of the user."""
        return event_id(self.id, self.version)


@dataclass(frozen=True)
class NewUser:
    """A validated CreateUser request."""

    name: str
    email: str
    request_id: str | None

    @property
    def fingerprint(self) -> str:
        """What a retry with the same request_id must match: the request's content."""
        return hashlib.sha256(f"{self.name}\0{self.email}".encode()).hexdigest()


@dataclass(frozen=True)
class UserChange:
    """A validated UpdateUser request: the fields to set, None where left as they are."""

    user_id: str
    name: str | None
    email: str | None

    def apply(self, user: User, now: datetime) -> tuple[User, list[str]]:
        """The user after the change, and the fields whose value really changed."""
        changed = [
            field
            for field, value in (("name", self.name), ("email", self.email))
            if value is not None and value != getattr(user, field)
        ]
        if not changed:
            return user, []
        values = {field: getattr(self, field) for field in changed}
        return replace(user, **values, update_time=now, version=user.version + 1), changed


@dataclass(frozen=True)
class Violation:
    field: str
    reason: str
    description: str


class InvalidRequestError(ValueError):
    """Some fields break the rules; every violation is reported, not just the first."""

    def __init__(self, violations: Iterable[Violation]) -> None:
        self.violations = list(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))


class UserNotFoundError(LookupError):
    pass


class EmailTakenError(ValueError):
    pass


class RequestIdReusedError(ValueError):
    pass


def new_user_id() -> str:
    """A UUIDv7 (RFC 9562, section 5.7): Unix milliseconds in the first 48 bits, random after.

    Ids made later sort later, so both services' primary-key indexes grow at their right edge
    instead of taking each insert on a random page: with random ids (UUIDv4), auth_svc spent
    twice the CPU per event, most of it writing index pages (measured: bench/README.md).
    Python 3.14's uuid.uuid7 makes the same ids.
    """
    millis = time.time_ns() // 1_000_000
    return _with_version(millis << 80 | int.from_bytes(os.urandom(10)), 7)


def event_id(user_id: str, version: int) -> str:
    """The id of the event that takes `user_id` to `version`: always the same for both.

    A UUIDv8 (RFC 9562, section 5.8): SHA-1 of the namespace and "<user id>/<version>", as a
    UUIDv5 is, but its first 48 bits are the user id's UUIDv7 milliseconds when it has them, so
    events of users created later sort later in auth_svc's inbox index too.
    """
    name = EVENT_ID_NAMESPACE.bytes + f"{user_id}/{version}".encode()
    digest = int.from_bytes(hashlib.sha1(name, usedforsecurity=False).digest()[:16])
    millis = _uuid7_millis(user_id)
    if millis is not None:
        digest = millis << 80 | digest & (1 << 80) - 1
    return _with_version(digest, 8)


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


def email_key(email: str) -> str:
    """The form two addresses are compared in: case-folded, so Ada@X.org == ada@x.org."""
    return email.casefold()


def normalize(text: str) -> str:
    return unicodedata.normalize("NFC", text.strip())


def validate_new_user(name: str, email: str, request_id: str = "") -> NewUser:
    """A CreateUser request as it will be stored; raise InvalidRequestError otherwise."""
    name, email = normalize(name), normalize(email)
    violations = [
        *_check("name", "INVALID_NAME", name_problem(name)),
        *_check("email", "INVALID_EMAIL", email_problem(email)),
        *_check("request_id", "INVALID_REQUEST_ID", request_id_problem(request_id)),
    ]
    if violations:
        raise InvalidRequestError(violations)
    return NewUser(name=name, email=email, request_id=request_id.lower() or None)


def validate_change(user_id: str, name: str, email: str, paths: Iterable[str]) -> UserChange:
    """An UpdateUser request (AIP-134): `paths` empty means every non-empty field, `*` all."""
    violations = list(_check("user.id", "INVALID_USER_ID", None if user_id else "is required"))
    paths = list(paths)
    unknown = sorted(set(paths) - {*UPDATABLE_FIELDS, "*"})
    if unknown:
        violations.append(
            Violation(
                "update_mask",
                "INVALID_UPDATE_MASK",
                f"cannot update {', '.join(unknown)}; updatable: name, email",
            )
        )
    if "*" in paths:
        fields = set(UPDATABLE_FIELDS)
    elif paths:
        fields = set(paths)
    else:
        fields = {field for field, value in (("name", name), ("email", email)) if value}
    if not fields and not unknown:
        violations.append(Violation("update_mask", "INVALID_UPDATE_MASK", "names no field"))
    name, email = normalize(name), normalize(email)
    if "name" in fields:
        violations.extend(_check("user.name", "INVALID_NAME", name_problem(name)))
    if "email" in fields:
        violations.extend(_check("user.email", "INVALID_EMAIL", email_problem(email)))
    if violations:
        raise InvalidRequestError(violations)
    return UserChange(
        user_id=user_id,
        name=name if "name" in fields else None,
        email=email if "email" in fields else None,
    )


def name_problem(name: str) -> str | None:
    if not name:
        return "is required"
    if len(name) > MAX_NAME_LENGTH:
        return f"must be at most {MAX_NAME_LENGTH} characters"
    if any(_forbidden(char) for char in name):
        return "must not contain control characters, line breaks or invisible formatting"
    return None


def email_problem(email: str) -> str | None:
    if not email:
        return "is required"
    if len(email) > MAX_EMAIL_LENGTH:
        return f"must be at most {MAX_EMAIL_LENGTH} characters"
    local, at, domain = email.rpartition("@")
    labels = domain.split(".")
    if (
        not at
        or len(local) > MAX_LOCAL_PART_LENGTH
        or not _LOCAL_PART.fullmatch(local)
        or any(_forbidden(char) for char in email)
        or len(labels) < 2
        or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels)
    ):
        return "must be an address of the form name@example.com"
    return None


def request_id_problem(request_id: str) -> str | None:
    if not request_id:
        return None
    try:
        parsed = uuid.UUID(request_id)
    except ValueError:
        return "must be a UUID such as 123e4567-e89b-12d3-a456-426614174000"
    if str(parsed) != request_id.lower():
        return "must be a UUID in its canonical 36-character form"
    return None


def _forbidden(char: str) -> bool:
    category = unicodedata.category(char)
    if category == "Cf":
        return char not in _ALLOWED_FORMAT_CHARACTERS
    return category in _FORBIDDEN_CATEGORIES


def _check(field: str, reason: str, problem: str | None) -> list[Violation]:
    return [] if problem is None else [Violation(field, reason, problem)]
