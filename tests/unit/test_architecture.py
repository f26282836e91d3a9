"""The layout's rules, read from the source: which package may import which, how many modules
sit directly under herald/, how long a module may grow, and that docs/architecture.md names
only code that exists. Each rule is also shown to catch a breach."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("herald", "users_svc", "auth_svc", "bench")
MAX_LINES = 300
MAX_TOP_LEVEL_MODULES = 6
GENERATED = ("herald.users", "herald.auth")


# --- reading the source ---


def modules(root: Path) -> Iterator[tuple[str, Path]]:
    """(dotted name, path) of every Python module of Herald's packages under `root`."""
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


def imported(name: str, path: Path) -> set[str]:
    """Every module `name` imports, at its top or inside a function, as a dotted name; for
    `from a import b`, `a.b` (b may be a module, or a name within a)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


# --- the rule ---


def kind(module: str) -> str:
    """generated, tools, runtime, users_svc, auth_svc, or other (bench, tests, libraries)."""

    def within(prefix: str) -> bool:
        return module == prefix or module.startswith(prefix + ".")

    if any(within(prefix) for prefix in GENERATED):
        return "generated"
    if within("herald.tools"):
        return "tools"
    if within("herald"):
        return "runtime"
    for service in ("users_svc", "auth_svc"):
        if within(service):
            return service
    return "bench" if within("bench") else "tests" if within("tests") else "other"


# What each kind of module may not import. The tools (and the bench) may import anything.
FORBIDDEN = {
    "generated": {"runtime", "tools", "users_svc", "auth_svc", "bench", "tests"},
    "runtime": {"tools", "users_svc", "auth_svc", "bench", "tests"},
    "users_svc": {"tools", "auth_svc", "bench", "tests"},
    "auth_svc": {"tools", "users_svc", "bench", "tests"},
}


def violations(imports: Mapping[str, Iterable[str]]) -> list[str]:
    """`a -> b` for every import the rule forbids, given each module's imports."""
    wrong = []
    for source, targets in sorted(imports.items()):
        banned = FORBIDDEN.get(kind(source), set())
        wrong += [f"{source} -> {t}" for t in sorted(targets) if kind(t) in banned]
    return wrong


def test_every_import_follows_the_rule() -> None:
    imports = {name: imported(name, path) for name, path in modules(REPO)}
    assert len(imports) > 50, "the modules were not found"
    assert violations(imports) == []


def test_the_rule_catches_each_wrong_arrow() -> None:
    assert violations(
        {
            "users_svc.servicer": ["herald.rpc.errors", "auth_svc.accounts"],
            "auth_svc.consumer": ["herald.tools.localkafka", "herald.users.v1.events_pb2"],
            "herald.kafka.sender": ["users_svc.model", "confluent_kafka"],
            "herald.storage.sqlite": ["bench.run", "tests.support"],
            "herald.users.v1.users_pb2": ["herald.kafka.records", "google.protobuf"],
            "herald.tools.cli": ["users_svc.settings", "auth_svc.settings", "bench.run"],
        }
    ) == [
        "auth_svc.consumer -> herald.tools.localkafka",
        "herald.kafka.sender -> users_svc.model",
        "herald.storage.sqlite -> bench.run",
        "herald.storage.sqlite -> tests.support",
        "herald.users.v1.users_pb2 -> herald.kafka.records",
        "users_svc.servicer -> auth_svc.accounts",
    ]


def test_imports_inside_functions_and_relative_ones_are_read(tmp_path: Path) -> None:
    module = tmp_path / "herald" / "kafka" / "late.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "def f():\n    from users_svc import model\n    import auth_svc.store\n"
        "from . import records\nfrom ..tools import cli\n"
    )
    found = imported("herald.kafka.late", module)
    assert {
        "users_svc.model",
        "auth_svc.store",
        "herald.kafka.records",
        "herald.tools.cli",
    } <= found
    assert violations({"herald.kafka.late": found}) == [
        "herald.kafka.late -> auth_svc.store",
        "herald.kafka.late -> herald.tools.cli",
        "herald.kafka.late -> users_svc.model",
    ]


# --- sizes ---


def top_level_modules(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "herald").glob("*.py") if p.name != "__init__.py")


def too_long(root: Path) -> list[str]:
    """Modules over MAX_LINES lines, generated code left out."""
    return [
        f"{path.relative_to(root)}: {lines} lines"
        for name, path in modules(root)
        if kind(name) != "generated" and (lines := len(path.read_text().splitlines())) > MAX_LINES
    ]


def test_few_modules_stay_directly_under_herald() -> None:
    assert len(top_level_modules(REPO)) <= MAX_TOP_LEVEL_MODULES, top_level_modules(REPO)


def test_no_module_outside_generated_code_and_tests_is_over_300_lines() -> None:
    assert too_long(REPO) == []


def test_the_size_checks_catch_a_breach(tmp_path: Path) -> None:
    for name in ("a", "b", "c", "d", "e", "f", "g"):
        (tmp_path / "herald" / f"{name}.py").parent.mkdir(exist_ok=True)
        (tmp_path / "herald" / f"{name}.py").write_text("x = 1\n" * (MAX_LINES + (name == "g")))
    assert len(top_level_modules(tmp_path)) > MAX_TOP_LEVEL_MODULES
    assert too_long(tmp_path) == [f"herald/g.py: {MAX_LINES + 1} lines"]


# --- docs/architecture.md ---

# `path/to/module.py` or `path/to/module.py:name` (a function or class, or Class.method).
REFERENCE = re.compile(r"`([\w./-]+\.py)(?::([\w.]+))?`")


def defined(path: Path) -> set[str]:
    """Top-level functions and classes of a module, and each class's methods as Class.name."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names.update(
                f"{node.name}.{member.name}"
                for member in node.body
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef)
            )
    return names


def missing_references(page: str, root: Path) -> list[str]:
    missing = []
    for path_text, name in REFERENCE.findall(page):
        path = root / path_text
        if not path.is_file():
            missing.append(path_text)
        elif name and name not in defined(path):
            missing.append(f"{path_text}:{name}")
    return missing


def create_user_path(page: str) -> list[str]:
    """The files the numbered CreateUser steps name: each step's text up to its first note
    (an indented `- ` line), the notes being the helpers a step calls."""
    section = page.split("## The path of one CreateUser", 1)[1].split("\n## ", 1)[0]
    steps: list[str] = []
    in_step = False
    for line in section.splitlines():
        if re.match(r"\d+\. ", line):
            steps.append(line)
            in_step = True
        elif in_step and line.startswith(" ") and not line.lstrip().startswith("- "):
            steps[-1] += " " + line.strip()
        else:
            in_step = False
    return sorted({path for step in steps for path, _ in REFERENCE.findall(step)})


def test_the_architecture_page_names_only_what_exists() -> None:
    page = (REPO / "docs" / "architecture.md").read_text()
    assert len(REFERENCE.findall(page)) > 20, "the page names almost no code"
    assert missing_references(page, REPO) == []


def test_the_create_user_path_crosses_at_most_12_files() -> None:
    files = create_user_path((REPO / "docs" / "architecture.md").read_text())
    assert 5 <= len(files) <= 12, files


def test_the_path_counts_what_its_steps_name_and_not_their_notes() -> None:
    page = """## The path of one CreateUser

1. `a.py:f` calls
   `b.py:g`.
   - `c.py:h` is a helper.
2. `d.py:k`.

## Next
`e.py`
"""
    assert create_user_path(page) == ["a.py", "b.py", "d.py"]


def test_a_reference_to_moved_code_is_caught() -> None:
    page = "See `users_svc/servicer.py:UserServicer.CreateUser`, `users_svc/gone.py` and "
    page += "`users_svc/servicer.py:UserServicer.Vanished`."
    assert missing_references(page, REPO) == [
        "users_svc/gone.py",
        "users_svc/servicer.py:UserServicer.Vanished",
    ]
