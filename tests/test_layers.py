"""The package layering of docs/architecture.md, read from the source: no import goes up a layer,
no import circle, and an import inside a function only with a `# deferred:` reason."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("worldmodel", "planners", "envs", "data", "benchmarks")
# Bottom first; a module may import its own layer and those before it.
LAYERS = (
    "worldmodel.common",
    "envs",
    "data",
    "worldmodel.models",
    "planners",
    "worldmodel.config",
    "worldmodel.training",
    "worldmodel.evaluation",
    "benchmarks",
    "worldmodel.cli",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def layer(module: str) -> int:
    for rank, prefix in enumerate(LAYERS):
        if module == prefix or module.startswith(prefix + "."):
            return rank
    if module == "worldmodel":  # the empty top package
        return 0
    raise AssertionError(f"{module}: in no layer of docs/architecture.md")


def known(target: str) -> str | None:
    """The first-party module an import names (`a.b.c` -> `a.b` if `c` is a name in it)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def imports(module: str, path: Path | None = None) -> list[tuple[str, ast.stmt, bool]]:
    """(target module, statement, inside a function) for each first-party import of `module`."""
    path = path or MODULES[module]
    tree = ast.parse(path.read_text())
    in_function = {
        id(node)
        for fn in ast.walk(tree)
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
        for node in ast.walk(fn)
        if isinstance(node, ast.Import | ast.ImportFrom)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            first_party = known(target) if target.split(".")[0] in PACKAGES else None
            found.append((first_party or target, node, id(node) in in_function))
    return found


def upward_imports(modules: dict[str, Path]) -> list[str]:
    return [
        f"{module} -> {target}"
        for module, path in modules.items()
        for target, _, _ in imports(module, path)
        if target in MODULES and layer(target) > layer(module)
    ]


def test_every_import_goes_down_or_sideways() -> None:
    upward = upward_imports(MODULES)
    assert not upward, "imports up a layer:\n" + "\n".join(upward)


def test_no_import_circles() -> None:
    graph = defaultdict(set)
    for module in MODULES:
        graph[module] = {t for t, _, _ in imports(module) if t in MODULES and t != module}
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module, [module])
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_imports_inside_functions_say_why() -> None:
    unexplained = []
    for module, path in MODULES.items():
        lines = path.read_text().splitlines()
        for _, node, inside in imports(module):
            if inside and "# deferred:" not in lines[node.lineno - 1]:
                unexplained.append(
                    f"{path.relative_to(REPO)}:{node.lineno}: {lines[node.lineno - 1].strip()}"
                )
    assert not unexplained, "imports inside functions without a `# deferred:` reason:\n" + "\n".join(
        sorted(set(unexplained))
    )


@pytest.mark.parametrize("package", ["planners"])
def test_planners_know_no_envs_and_no_tasks(package: str) -> None:
    for path in sorted((REPO / package).rglob("*.py")):
        text = path.read_text()
        assert "envs" not in {t.split(".")[0] for t, _, _ in imports(module_name(path))}, path
        for task in ("reach", "push", "grasp", "pickplace"):
            assert task not in text.lower(), f"{path.relative_to(REPO)} names the task '{task}'"


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The rule can fail: a models module that imports from training is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from worldmodel.training.pretrain import pretrain\nfrom worldmodel.models.vit import Block\n"
    )
    assert upward_imports({"worldmodel.models.bad": bad}) == [
        "worldmodel.models.bad -> worldmodel.training.pretrain"
    ]
