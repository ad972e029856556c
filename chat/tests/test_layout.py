"""The module layout: no import cycle in the project, and the pure modules import without Django."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("chat", "accounts", "chatsite")


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports, anywhere in it (functions too), except under
    `if TYPE_CHECKING:`; tests and migrations left out (the same rules as import-cycles)."""
    files: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if {"tests", "migrations"} & set(path.parts):
                continue
            files[".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {name: set() for name in files}
    for module, path in files.items():
        tree = ast.parse(path.read_text())
        typing_only = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for statement in node.body
            for inner in ast.walk(statement)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            for name in names:
                while name and name not in files:
                    name = name.rpartition(".")[0]
                if name and name != module and not name.startswith(module + "."):
                    graph[module].add(name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == 1:
                return [*path[path.index(imported) :], imported]
            if imported not in state and (cycle := visit(imported)) is not None:
                return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)) is not None:
            return cycle
    return None


def test_the_project_has_no_import_cycle() -> None:
    """chat, accounts and chatsite import each other in layers, never in a circle."""
    graph = import_graph()
    assert "chat.delivery" in graph and "chat.fanout" in graph["chat.services"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_check_finds_a_cycle() -> None:
    """The check is not vacuous: a circle hidden in a function-level import is found."""
    graph = import_graph()
    graph["chat.protocol"].add("chat.services")
    cycle = find_cycle(graph)
    assert cycle is not None and "chat.protocol" in cycle and "chat.services" in cycle


def test_the_pure_modules_import_without_django() -> None:
    """The wire protocol, the event vocabulary, the records and the delivery core import in a
    process without DJANGO_SETTINGS_MODULE and never load Django."""
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    code = (
        "import sys; import chat.protocol, chat.events, chat.records, chat.delivery; "
        "loaded = sorted(m for m in sys.modules if m == 'django' or m.startswith(('django.', 'channels')));"
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
