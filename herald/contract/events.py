"""When a user event is consistent: the checks auth_svc makes before it looks an event up in its
inbox or applies it.

users_svc only ever publishes events that pass them: a version that follows the user's
(1 for its creation, then 2, 3, ...), the event id derived from user id and version, and a
name and email its own rules accept. A record that breaks any of them did not come from
users_svc as it is, so applying it could only do harm: a version of 2^63 - 1 would freeze the
account for good, and a guessed event id would turn the next real change into a duplicate.
"""

from __future__ import annotations

from herald.contract.fields import email_problem, name_problem, normalize
from herald.contract.ids import event_id, uuid_problem

# The CloudEvents `source` users_svc publishes as unless configured otherwise, and so the one
# source auth_svc accepts by default.
USERS_SVC_SOURCE = "/herald/users-svc"

# Versions are counted in 32 bits of room: two billion changes of one user is more than any
# user makes, and a bound keeps a forged version from putting an account out of reach.
MAX_VERSION = 2**31 - 1


def created_problem(
    event_id_: str, user_id: str, version: int, name: str, email: str
) -> str | None:
    """What is wrong with a UserCreated carrying these values, or None."""
    if version != 1:
        return f"UserCreated has version {version}; a user is created at version 1"
    return _state_problem(event_id_, user_id, version, name, email)


def updated_problem(
    event_id_: str, user_id: str, version: int, name: str, email: str
) -> str | None:
    """What is wrong with a UserUpdated carrying these values, or None."""
    if not 2 <= version <= MAX_VERSION:
        return f"UserUpdated has version {version}; updates run from 2 to {MAX_VERSION}"
    return _state_problem(event_id_, user_id, version, name, email)


def deleted_problem(event_id_: str, user_id: str, version: int) -> str | None:
    """What is wrong with a UserDeleted carrying these values, or None. A delete follows at
    least the creation, so its version is 2 or more: a forged one at version 1, or with an id
    of its own, must not erase an account."""
    if not 2 <= version <= MAX_VERSION:
        return f"UserDeleted has version {version}; deletes run from 2 to {MAX_VERSION}"
    return _identity_problem(event_id_, user_id, version)


def _identity_problem(event_id_: str, user_id: str, version: int) -> str | None:
    # Messages name the field, never repeat its value: a record's text is a client's input.
    problem = uuid_problem(user_id) if user_id else "is required"
    if problem is not None:
        return f"user_id: {problem}"
    if event_id_ != event_id(user_id, version):
        return "event_id: is not the id derived from user_id and version"
    return None


def _state_problem(event_id_: str, user_id: str, version: int, name: str, email: str) -> str | None:
    problem = _identity_problem(event_id_, user_id, version)
    if problem is not None:
        return problem
    for field, value, check in (("name", name, name_problem), ("email", email, email_problem)):
        problem = check(value)
        if problem is None and normalize(value) != value:
            problem = "is not trimmed and NFC-normalised as users_svc stores it"
        if problem is not None:
            return f"{field}: {problem}"
    return None
