"""The shape of the code: one import root, layers that point one way, no import cycles, lazy heavy imports.

The import graph is read from the source with ``ast`` (imports inside functions included), naming each
module as it is installed: the folder ``index/`` is ``pixseek.index`` (pyproject.toml's package-dir).
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]

# Each layer and the layers it may import (itself included). Nothing imports the page but the CLI,
# which launches it.
CORE = {
    "pixseek.errors",
    "pixseek.settings",
    "pixseek.fileio",
    "pixseek.faults",
    "pixseek.decode",
    "pixseek.exif",
    "pixseek.phash",
    "pixseek.hosts",
    "pixseek.sources",
    "pixseek",
}
ALLOWED = {
    "core": {"core"},
    "models": {"core", "models"},
    "store": {"core", "store"},
    "index": {"core", "models", "store", "index"},
    "search": {"core", "models", "store", "search"},
    "train": {"core", "models", "train"},
    "ui": {"core", "store", "search", "ui"},
    "service": {"core", "models", "store", "search", "service"},
    "cli": {"core", "models", "store", "index", "search", "train", "ui", "service", "cli"},
}
HEAVY = {
    "torch",
    "torchvision",
    "open_clip",
    "faiss",
    "onnxruntime",
    "onnx",
    "streamlit",
    "transformers",
    "imagehash",
    "scipy",
    "rapidocr",
    "cv2",
    "ray",
    "fsspec",
    "s3fs",
}
# the page and its parts are a Streamlit script: streamlit is the point (the service and launcher stay free of it)
HEAVY_AT_TOP = {
    f"pixseek.ui.{m}": {"streamlit"} for m in ("page", "grid", "cards", "detail", "state", "sidebar", "dupes")
}


def layer(module: str) -> str:
    if module in CORE:
        return "core"
    if module in ("pixseek.cli", "pixseek.__main__") or module.startswith("pixseek.cli_"):
        return "cli"
    return module.split(".")[1]


def modules() -> dict[str, Path]:
    out = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            out[name] = path
    return out


MODULES = modules()


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str) -> tuple[set[str], set[str], set[str]]:
    """(pixseek modules it imports, third-party top-level names it imports anywhere, ... at module level)."""
    tree = ast.parse(MODULES[module].read_text())
    top_level = {id(n) for n in tree.body}
    ours: set[str] = set()
    libs: set[str] = set()
    libs_top: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            # `from pkg import mod` imports the module pkg.mod; `from pkg import name` imports pkg
            names = [f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target for a in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] == "pixseek":
                ours.add(name if name in MODULES else name.rsplit(".", 1)[0])
            else:
                libs.add(name.split(".")[0])
                if id(node) in top_level:
                    libs_top.add(name.split(".")[0])
    ours.discard(module)
    return ours, libs, libs_top


GRAPH = {m: imports(m)[0] for m in MODULES}


def test_every_module_is_under_the_one_import_root():
    assert all(m == "pixseek" or m.startswith("pixseek.") for m in MODULES)
    for m, deps in GRAPH.items():
        assert deps <= set(MODULES), (m, deps - set(MODULES))
    # no top-level package of the old layout survives as an import anywhere in the repo's Python
    old = ("index", "search", "ui", "train", "models", "store")
    for path in [*ROOT.glob("bench/*.py"), *ROOT.glob("scripts/*.py"), *ROOT.glob("tests/*.py"), *MODULES.values()]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and not node.level:
                assert (node.module or "").split(".")[0] not in old, (path, node.module)
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] in old for a in node.names), path


def _edits_sys_path(node: ast.AST) -> bool:
    """``sys.path.insert(...)``, ``.append``, ``.extend`` or ``sys.path = ...``."""

    def is_sys_path(n: ast.AST) -> bool:
        return (
            isinstance(n, ast.Attribute) and n.attr == "path" and isinstance(n.value, ast.Name) and n.value.id == "sys"
        )

    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr in ("insert", "append", "extend") and is_sys_path(node.func.value)
    return isinstance(node, ast.Assign) and any(is_sys_path(t) for t in node.targets)


def test_no_sys_path_edits():
    assert _edits_sys_path(ast.parse("import sys; sys.path.insert(0, 'x')").body[1].value)  # the check works
    for path in [*ROOT.glob("bench/*.py"), *ROOT.glob("scripts/*.py"), *ROOT.glob("tests/*.py"), *MODULES.values()]:
        assert not any(_edits_sys_path(n) for n in ast.walk(ast.parse(path.read_text()))), path


@pytest.mark.parametrize("module", sorted(MODULES))
def test_layers_point_one_way(module):
    mine = layer(module)
    upward = {dep for dep in GRAPH[module] if layer(dep) not in ALLOWED[mine]}
    assert not upward, f"{module} ({mine}) imports {sorted(upward)}"


def test_no_import_cycles():
    """Tarjan's strongly connected components over the module graph: every component is one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert cycles == []


def test_heavy_libraries_load_lazily():
    for module in MODULES:
        _, _, top = imports(module)
        assert top & HEAVY <= HEAVY_AT_TOP.get(module, set()), (module, top & HEAVY)


def test_ray_is_imported_only_by_the_ray_run():
    """The ``ray`` extra is optional: only the module that runs an index on Ray imports it (lazily)."""
    users = {m for m in MODULES if "ray" in imports(m)[1]}
    assert users == {"pixseek.index.ray_run"}


def test_the_graph_is_read_for_real():
    """The checks above see real edges (a parser that found none would pass them all)."""
    assert (
        "pixseek.store.database" in GRAPH["pixseek.index.indexer"] or "pixseek.store" in GRAPH["pixseek.index.indexer"]
    )
    assert "pixseek.models.registry" in GRAPH["pixseek.models.export"]
    assert "pixseek.ui.launch" in GRAPH["pixseek.cli"]
    assert "torch" in imports("pixseek.models.torch_encoder")[1]
    assert layer("pixseek.store.vectors") == "store" and layer("pixseek.errors") == "core"
