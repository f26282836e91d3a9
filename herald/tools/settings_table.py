"""README's generated tables: the configuration, from the services' Settings declarations,
and the Kafka ACLs, from herald.kafka.acls' grants.

`make docs` writes each into README.md between its two markers; `--check` (a unit test runs
the same comparison) fails when README.md says something the code does not.
Run: python -m herald.tools.settings_table [--check] README.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from auth_svc.settings import Settings as AuthSettings
from herald.kafka.acls import Grant, grants
from herald.settings import Declared
from users_svc.settings import Settings as UsersSettings

START = "<!-- settings table: made by `make docs` from the Settings classes -->"
END = "<!-- end of settings table -->"
ACL_START = "<!-- ACL table: made by `make docs` from herald/kafka/acls.py -->"
ACL_END = "<!-- end of ACL table -->"


def table() -> str:
    """Every setting once: the shared ones as `both`, then users_svc's, then auth_svc's."""
    users, auth = UsersSettings.declared(), AuthSettings.declared()
    rows = [(each, "both" if each in auth else "users") for each in users]
    rows += [(each, "auth") for each in auth if each not in users]
    lines = ["| variable | service | default | meaning |", "|---|---|---|---|"]
    lines += [
        f"| `{each.variable}` | {service} | `{_shown(each)}` | {each.meaning} |"
        for each, service in rows
    ]
    return "\n".join(lines) + "\n"


def acl_table(wanted: tuple[Grant, ...] | None = None) -> str:
    """One row per principal and resource, with the operations it is allowed there."""
    allowed: dict[tuple[str, str, str], list[str]] = {}
    for each in wanted or grants():
        resource = (each.principal, each.resource_type.name.lower(), each.name)
        allowed.setdefault(resource, []).append(each.operation.name.replace("_", " ").title())
    lines = ["| principal | resource | allowed |", "|---|---|---|"]
    lines += [
        f"| `{principal}` | {kind} `{name}` | {', '.join(operations)} |"
        for (principal, kind, name), operations in allowed.items()
    ]
    return "\n".join(lines) + "\n"


def with_table(readme: str) -> str:
    """`readme` with the text between each pair of markers replaced by its current table."""
    return _replaced(_replaced(readme, START, END, table()), ACL_START, ACL_END, acl_table())


def _replaced(readme: str, start_marker: str, end_marker: str, body: str) -> str:
    before, start, rest = readme.partition(start_marker)
    _old, end, after = rest.partition(end_marker)
    if not start or not end:
        raise ValueError(f"README.md lacks the markers {start_marker!r} and {end_marker!r}")
    return f"{before}{start}\n{body}{end}{after}"


def _shown(each: Declared) -> str:
    """A default as a reader would type it: 15 for 15.0, a path as its text."""
    value = each.default
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("readme", type=Path)
    parser.add_argument("--check", action="store_true", help="fail if README.md is stale")
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    wanted = with_table(text)
    if wanted == text:
        return 0
    if args.check:
        print(f"{args.readme}: a generated table is stale; run `make docs`", file=sys.stderr)
        return 1
    args.readme.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
