"""The shared library as a package: every module imports on its own, the import graph has no
cycle, and `pip install .` declares what requirements.txt pins."""

import ast
import re
import subprocess
import sys

import pytest
from conftest import ROOT

SRC = ROOT / "src"
MODULES = sorted(
    ".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
    for p in (SRC / "common").rglob("*.py")
)


@pytest.mark.slow
def test_every_module_imports_alone_in_a_fresh_interpreter():
    # One interpreter per module, so a module that only works after another was imported fails.
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)"
    failed = []
    for module in MODULES:
        proc = subprocess.run([sys.executable, "-c", code, module], capture_output=True, text=True, cwd=ROOT)
        if proc.returncode:
            failed.append(f"{module}: {proc.stderr.strip().splitlines()[-1]}")
    assert len(MODULES) > 30 and not failed, failed


def imports_of(module: str) -> set[str]:
    """The common.* modules a module imports, at the top or inside functions."""
    path = SRC / (module.replace(".", "/") + ".py")
    if not path.is_file():
        path = SRC / module.replace(".", "/") / "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("common"):
            for alias in node.names:  # `from common.train import losses` imports a module
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("common")}
    return found - {module}


def test_the_import_graph_has_no_cycle():
    graph = {m: imports_of(m) & set(MODULES) for m in MODULES}
    assert graph["common.models.loading"] and graph["common.train.setup"]  # the parse sees imports
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join([*trail, node, nxt])
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for module in MODULES:
        if module not in state:
            visit(module, [])


def test_pyproject_declares_every_pinned_runtime_dependency():
    # tomllib is 3.11+; the list is one quoted requirement per line.
    block = re.search(r"^dependencies = \[(.*?)^\]", (ROOT / "pyproject.toml").read_text(), re.M | re.S)
    declared = {re.split(r"[<>=!~]", d)[0]: d for d in re.findall(r'"([^"]+)"', block.group(1))}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        name, version = line.split("==")
        assert name in declared, f"pyproject.toml does not declare {name}"
        spec = declared[name]
        floor = re.search(r">=([\w.]+)", spec)
        assert floor and floor.group(1) == version, f"{spec}: the floor should be the tested pin {version}"
