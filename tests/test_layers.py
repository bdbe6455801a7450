"""The package's shape: tfscissor's packages form layers that import only downward, and no two packages import
each other, counting imports inside functions too (a loop hidden in a function still couples them)."""

import ast
from collections import defaultdict
from pathlib import Path

import tfscissor

ROOT = Path(tfscissor.__file__).parent

# Lowest first; a package may import its own layer's packages and any below (README, Layout).
LAYERS = (
    {"__init__", "errors", "io", "progress", "lazy"},
    {"deploy"},
    {"models", "analysis", "data"},
    {"trim", "shrink", "crop", "quantize", "compile", "bench", "report", "model_files"},
    {"cli", "recipe", "__main__"},
)


def _package(module_path):
    parts = module_path.relative_to(ROOT).with_suffix("").parts
    return parts[0]


def _imports():
    """package -> the tfscissor packages its modules import (top level or inside functions)."""
    edges = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        source = _package(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tfscissor"):
                names = [f"{node.module}.{a.name}" for a in node.names] if node.module == "tfscissor" else [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("tfscissor")]
            else:
                continue
            for name in names:
                parts = name.split(".")
                target = parts[1] if len(parts) > 1 else "__init__"
                target = "__init__" if target == "__version__" else target
                if target != source:
                    edges[source].add(target)
    return edges


def _layer(package):
    return next(index for index, layer in enumerate(LAYERS) if package in layer)


def test_every_package_has_a_layer():
    packages = {_package(path) for path in ROOT.rglob("*.py")}
    assert packages <= set().union(*LAYERS), packages - set().union(*LAYERS)


def test_packages_import_only_their_own_layer_and_below():
    upward = [
        f"{source} -> {target}"
        for source, targets in _imports().items()
        for target in targets
        if _layer(target) > _layer(source)
    ]
    assert not upward, upward


def test_no_two_packages_import_each_other_even_through_others():
    edges = _imports()

    def reachable(start):
        seen, todo = set(), [start]
        while todo:
            for target in edges.get(todo.pop(), ()):
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        return seen

    loops = sorted(package for package in edges if package in reachable(package))
    assert not loops, loops
