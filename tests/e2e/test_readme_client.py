"""The README's client example runs as written (against this run's users_svc)."""

from __future__ import annotations

import re

from tests.conftest import REPO
from tests.e2e.conftest import Stack


def test_the_safe_client_example_creates_a_user(stack: Stack) -> None:
    readme = (REPO / "README.md").read_text()
    [example] = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    namespace: dict[str, object] = {}
    exec(example.replace("127.0.0.1:50051", stack.users), namespace)  # noqa: S102 - our own README
    user = namespace["user"]
    assert getattr(user, "name", None) == "Ada"
