"""Import rules of DESIGN.md, checked on the source: dependencies point one way, heavy optional
packages are only imported lazily (inside functions), only the CLI exits the process."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("vidrestore", "engines", "training", "benchmarks")
LAZY_ONLY = ("tensorrt", "cupy", "torch_tensorrt", "PyNvVideoCodec", "facexlib", "matplotlib",
             "decord", "onnx", "onnxscript", "ray")
# module prefix -> prefixes it must not import at module level
FORBIDDEN = {
    "vidrestore.models": ("vidrestore.pipeline", "vidrestore.cli", "vidrestore.faces",
                          "vidrestore.media", "vidrestore.backends", "engines", "training"),
    "vidrestore.media": ("vidrestore.pipeline", "vidrestore.cli", "vidrestore.faces",
                         "vidrestore.backends", "vidrestore.models", "engines", "training"),
    "vidrestore.faces": ("vidrestore.pipeline", "vidrestore.cli", "vidrestore.media",
                         "vidrestore.backends", "engines", "training"),
    "vidrestore.backends": ("vidrestore.pipeline", "vidrestore.cli", "engines", "training"),
    "vidrestore": ("engines", "training", "benchmarks"),
    "engines": ("vidrestore.pipeline", "vidrestore.cli", "training", "benchmarks"),
    "training": ("vidrestore.pipeline", "vidrestore.cli", "benchmarks", "engines"),
}


def modules():
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            rel = path.relative_to(REPO).with_suffix("")
            yield ".".join(rel.parts).removesuffix(".__init__"), path


def top_level_imports(path: Path, module: str) -> list[str]:
    tree = ast.parse(path.read_text())
    names = []
    for node in tree.body:      # module level only; imports inside functions are lazy by design
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
            if isinstance(sub, ast.Import):
                names += [a.name for a in sub.names]
            elif isinstance(sub, ast.ImportFrom):
                if sub.level:
                    base = module.split(".")
                    is_pkg = path.name == "__init__.py"
                    base = base[: len(base) - sub.level + (1 if is_pkg else 0)]
                    names.append(".".join(base + ([sub.module] if sub.module else [])))
                else:
                    names.append(sub.module or "")
    return names


ALL = list(modules())


@pytest.mark.parametrize("module,path", ALL, ids=[m for m, _ in ALL])
def test_import_direction(module, path):
    imports = top_level_imports(path, module)
    rules = [bad for prefix, bad in FORBIDDEN.items()
             if module == prefix or module.startswith(prefix + ".")]
    for name in imports:
        root = name.split(".")[0]
        assert root not in LAZY_ONLY, f"{module} imports {name} at module level (must be lazy)"
        for bad in (b for r in rules for b in r):
            assert not (name == bad or name.startswith(bad + ".")), f"{module} must not import {name}"


@pytest.mark.parametrize("module,path", ALL, ids=[m for m, _ in ALL])
def test_only_cli_exits(module, path):
    if module in ("vidrestore.cli", "vidrestore.__main__") or module.startswith("benchmarks") \
            or module.startswith(("training.train", "engines.export_onnx")):
        return  # entry points
    src = path.read_text()
    tree = ast.parse(src)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = ast.unparse(node.func)
            assert f not in ("sys.exit", "exit", "quit", "os._exit"), f"{module} calls {f}"
