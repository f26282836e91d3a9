"""Which names and emails are acceptable. Text is trimmed and NFC-normalised before it is
checked or stored, so the same name typed on two keyboards is stored the same way; any script
is welcome."""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_LENGTH = 200
# RFC 5321 limits: a whole address travels in 254 characters, its local part in 64.
MAX_EMAIL_LENGTH = 254
MAX_LOCAL_PART_LENGTH = 64

# Deliberately plain: one @, no spaces, quotes or brackets in the local part, a dotted
# domain of letters, digits and hyphens in any script. Full RFC 5322 syntax admits
# addresses no mail system delivers to; a confirmation mail is the only real check.
_LOCAL_PART = re.compile(r"[^\s@\"(),:;<>\[\]\\]+")
_LABEL = r"[^\W_](?:(?:[^\W_]|-){0,61}[^\W_])?"
# Two labels or more, in one match rather than one per label (auth_svc checks every event's).
_DOMAIN = re.compile(rf"(?:{_LABEL}\.)+{_LABEL}")
# Zero-width (non-)joiners are format characters that Persian, Indic scripts and emoji need;
# other format characters (bidi overrides, say) only serve to make text look like other text.
_ALLOWED_FORMAT_CHARACTERS = {"\u200c", "\u200d"}
_FORBIDDEN_CATEGORIES = {"Cc", "Cs", "Co", "Cn", "Zl", "Zp"}

# The most of a client's own text an error message repeats: enough to spot a typo, never
# enough to make an answer (or a log line quoting it) as large as what was sent.
MAX_ECHOED = 64


def normalize(text: str) -> str:
    return unicodedata.normalize("NFC", text.strip())


def name_problem(name: str) -> str | None:
    if not name:
        return "is required"
    if len(name) > MAX_NAME_LENGTH:
        return f"must be at most {MAX_NAME_LENGTH} characters"
    if _has_forbidden(name):
        return "must not contain control characters, line breaks or invisible formatting"
    return None


def email_problem(email: str) -> str | None:
    if not email:
        return "is required"
    if len(email) > MAX_EMAIL_LENGTH:
        return f"must be at most {MAX_EMAIL_LENGTH} characters"
    local, at, domain = email.rpartition("@")
    if (
        not at
        or len(local) > MAX_LOCAL_PART_LENGTH
        or not _LOCAL_PART.fullmatch(local)
        or _has_forbidden(email)
        or not _DOMAIN.fullmatch(domain)
    ):
        return "must be an address of the form name@example.com"
    return None


def echoed(text: str) -> str:
    """`text` as an error message may repeat it: its first MAX_ECHOED characters at most."""
    return text if len(text) <= MAX_ECHOED else text[: MAX_ECHOED - 1] + "…"


def quoted(value: object) -> str:
    """`value` as a log line may show it when a client or a record supplied any of it: cut as
    `echoed` cuts, then repr()'d, so a line break prints as \\n and cannot start a forged
    line, and a 10,000-character header costs a line a few hundred characters at most."""
    return repr(echoed(str(value)))


def _has_forbidden(text: str) -> bool:
    # str.isprintable() is False for every forbidden category (and for spaces other than
    # U+0020, which are allowed): in C, it clears almost every text at once; only the rest is
    # looked at character by character. auth_svc checks each event's name and email this way.
    return not text.isprintable() and any(_forbidden(char) for char in text)


def _forbidden(char: str) -> bool:
    category = unicodedata.category(char)
    if category == "Cf":
        return char not in _ALLOWED_FORMAT_CHARACTERS
    return category in _FORBIDDEN_CATEGORIES
