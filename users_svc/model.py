"""What a user is, how requests to make or change one are validated, and the rules for changing
one. No gRPC, Kafka or SQL here; the field and id rules themselves are herald.contract's,
which auth_svc checks events with too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property

from herald.contract.fields import echoed, email_problem, name_problem, normalize
from herald.contract.ids import event_id, uuid_problem

UPDATABLE_FIELDS = ("name", "email")


@dataclass(frozen=True)
class User:
    id: str
    name: str
    email: str
    create_time: datetime
    update_time: datetime
    version: int

    @cached_property
    def event_id(self) -> str:
        """The id of the event that announced this version of the user (a SHA-1: computed
        once, though the record, its header and the outbox row all need it)."""
        return event_id(self.id, self.version)


@dataclass(frozen=True)
class Tombstone:
    """What stays of an erased user: no name, no email, only what answers a retried delete
    and tells the user's older events apart (its last version) and when it was erased."""

    id: str
    version: int
    delete_time: datetime

    @cached_property
    def event_id(self) -> str:
        """The id of the UserDeleted event that announced the erasure."""
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
class UserDeletion:
    """A validated DeleteUser request."""

    user_id: str
    request_id: str | None

    def tombstone(self, user: User, now: datetime) -> Tombstone:
        """What stays of `user` once erased: one version more than its last change."""
        return Tombstone(user.id, user.version + 1, now)


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


def email_key(email: str) -> str:
    """The form two addresses are compared in: case-folded, so Ada@X.org == ada@x.org."""
    return email.casefold()


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
    violations = list(_check("user.id", "INVALID_USER_ID", user_id_problem(user_id)))
    paths = list(paths)
    unknown = sorted(set(paths) - {*UPDATABLE_FIELDS, "*"})
    if unknown:
        violations.append(
            Violation(
                "update_mask",
                "INVALID_UPDATE_MASK",
                f"cannot update {echoed(', '.join(unknown))}; updatable: name, email",
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


def validate_deletion(user_id: str, request_id: str = "") -> UserDeletion:
    """A DeleteUser request (AIP-135); raise InvalidRequestError otherwise."""
    violations = [
        *_check("id", "INVALID_USER_ID", user_id_problem(user_id)),
        *_check("request_id", "INVALID_REQUEST_ID", request_id_problem(request_id)),
    ]
    if violations:
        raise InvalidRequestError(violations)
    return UserDeletion(user_id=user_id, request_id=request_id.lower() or None)


def request_id_problem(request_id: str) -> str | None:
    """Optional; any case is accepted and stored lower-case."""
    return uuid_problem(request_id.lower()) if request_id else None


def user_id_problem(user_id: str) -> str | None:
    """Ids are made here as canonical UUIDs: anything else names no user, and is refused
    before it reaches a store or an error message."""
    return uuid_problem(user_id) if user_id else "is required"


def _check(field: str, reason: str, problem: str | None) -> list[Violation]:
    return [] if problem is None else [Violation(field, reason, problem)]
