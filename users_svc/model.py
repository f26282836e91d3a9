"""What a user is and which names and emails are acceptable; no gRPC or Kafka here."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

MAX_NAME_LENGTH = 200
# RFC 5321 limits: a whole address travels in 254 characters, its local part in 64.
MAX_EMAIL_LENGTH = 254
MAX_LOCAL_PART_LENGTH = 64

# Deliberately plain: one @, no spaces or controls, a dotted domain of letters, digits
# and hyphens (internationalised labels allowed). Full RFC 5322 syntax admits addresses no
# mail system delivers to; a confirmation mail is the only real check.
_LOCAL_PART = re.compile(r"[^\s@\"(),:;<>\[\]\\]+")
_DOMAIN_LABEL = re.compile(r"(?!-)[\w-]{1,63}(?<!-)")


@dataclass(frozen=True)
class User:
    id: str
    name: str
    email: str
    create_time: datetime


class InvalidUserError(ValueError):
    """The request's fields break the rules; `violations` maps field name to the reason."""

    def __init__(self, violations: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {reason}" for field, reason in violations.items()))
        self.violations = violations


def validate_new_user(name: str, email: str) -> tuple[str, str]:
    """Return the name and email as they will be stored (trimmed); raise InvalidUserError."""
    name = name.strip()
    email = email.strip()
    violations = {}
    name_problem = _name_problem(name)
    if name_problem:
        violations["name"] = name_problem
    email_problem = _email_problem(email)
    if email_problem:
        violations["email"] = email_problem
    if violations:
        raise InvalidUserError(violations)
    return name, email


def _name_problem(name: str) -> str | None:
    if not name:
        return "is required"
    if len(name) > MAX_NAME_LENGTH:
        return f"must be at most {MAX_NAME_LENGTH} characters"
    if any(unicodedata.category(char).startswith("C") for char in name):
        return "must not contain control or unassigned characters"
    return None


def _email_problem(email: str) -> str | None:
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
        or len(labels) < 2
        or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels)
    ):
        return "must be an address of the form name@example.com"
    return None
