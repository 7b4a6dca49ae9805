"""The package layout's rules, read from the source (an AST walk; nothing is imported):

- ``sdk`` imports neither ``gateway``, ``profiles`` nor the command line (``bitrate_cli``);
- ``gateway`` and ``profiles`` never import each other, nor the command line;
- so only ``bitrate_cli`` imports all three;
- no import circle between files (imports inside functions and ``TYPE_CHECKING`` blocks count);
- the project's own modules are imported at the top of a file (the graph stays visible), except
  where the command line defers the web stack for start-up time and where a module that
  imports numpy or torch is deferred until first needed (``DEFERRED_OK``);
- no ``except ImportError`` around the project's own modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("sdk", "gateway", "profiles", "bitrate_cli")
FORBIDDEN = {
    "sdk": {"gateway", "profiles", "bitrate_cli"},
    "gateway": {"profiles", "bitrate_cli"},
    "profiles": {"gateway", "bitrate_cli"},
    "bitrate_cli": set(),
}
DEFERRED_OK = {
    # `bitrate --help` and every other command start without loading FastAPI/uvicorn
    ("bitrate_cli.serve", "gateway.app"),
    ("bitrate_cli.serve", "gateway.banner"),
    ("bitrate_cli.demo", "gateway.app"),
    ("bitrate_cli.demo", "gateway.local"),
    # numpy, torch or a sentence model behind these: loaded when first needed, so routing stays light
    ("sdk.engine", "sdk.estimate"),
    ("sdk.engine", "sdk.live.isolated"),
    ("sdk.cascade", "sdk.cascade_fit"),
    ("sdk.detect.registry", "sdk.detect.lexical"),
    ("sdk.detect.registry", "sdk.detect.embedding"),
    ("sdk.backends.transformers_local", "sdk.backends.hf_model"),
    ("sdk.backends.transformers_local", "sdk.backends.hf_worker"),
    # torch, transformers and accelerate behind a distillation run: `bitrate capture export` stays light
    ("profiles.distill", "profiles.distill.trainer"),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _files() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


FILES = _files()


def _resolve(name: str) -> str | None:
    """The project file a dotted import lands in (``sdk.errors.X`` -> ``sdk.errors``), if any."""
    while name:
        if name in FILES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, tree: ast.Module) -> Iterator[tuple[str, ast.AST, bool]]:
    """``(project module imported, node, at the top of the file)`` for every own import."""
    top = {id(node) for node in tree.body}
    top |= {id(n) for node in tree.body if isinstance(node, ast.If) for n in ast.walk(node)}
    package = module if FILES[module].name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    [*package.split(".")[: len(package.split(".")) - node.level + 1], base]
                ).strip(".")
            names = [f"{base}.{alias.name}" for alias in node.names] or [base]
        for name in names:
            target = _resolve(name)
            if target is not None and target != module:
                yield target, node, id(node) in top


def _graph() -> dict[str, list[tuple[str, ast.AST, bool]]]:
    return {m: list(_imports(m, ast.parse(p.read_text(encoding="utf-8")))) for m, p in FILES.items()}


GRAPH = _graph()


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_import_one_way(package: str):
    wrong = sorted(
        f"{module} imports {target}"
        for module, edges in GRAPH.items()
        if module.split(".")[0] == package
        for target, _node, _top in edges
        if target.split(".")[0] in FORBIDDEN[package]
    )
    assert wrong == []


def test_only_the_command_line_imports_all_three():
    users = {
        module.split(".")[0]
        for module, edges in GRAPH.items()
        if {t.split(".")[0] for t, _n, _top in edges} >= {"sdk", "gateway", "profiles"}
    }
    assert users <= {"bitrate_cli"}


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one file (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in {t for t, _n, _top in GRAPH[node]}:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles_between_files():
    assert _cycles() == []


def test_own_modules_are_imported_at_the_top():
    hidden = sorted(
        f"{module} imports {target} inside a function (line {node.lineno})"  # type: ignore[attr-defined]
        for module, edges in GRAPH.items()
        for target, node, top in edges
        if not top and (module, target) not in DEFERRED_OK
    )
    assert hidden == []


def test_no_import_error_guard_around_own_modules():
    guarded = []
    for module, path in FILES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Try):
                continue
            catches = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
            if not any("ImportError" in c or "ModuleNotFoundError" in c for c in catches):
                continue
            body = ast.Module(body=node.body, type_ignores=[])
            if _own_import_in(module, body):
                guarded.append(f"{module}:{node.lineno}")
    assert guarded == []


def _own_import_in(module: str, body: ast.Module) -> bool:
    for node in ast.walk(body):
        if isinstance(node, ast.Import) and any(_resolve(a.name) for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module and _resolve(node.module):
            return True
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module"):
            return True
    return False


def test_the_rules_see_the_graph():
    """The walk finds the edges it is meant to judge (a broken walk would pass every rule)."""
    assert "sdk.errors" in {t for t, _n, _top in GRAPH["gateway.errors"]}
    assert "profiles.outcomes" in {t for t, _n, _top in GRAPH["bitrate_cli.route"]}
    assert len(FILES) > 80
