"""Layering: the library never imports the zoo or the task scripts; the spec depends on errors only."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "weightspace"
FORBIDDEN = ("zoo", "tasks")
LIBRARY_FILES = sorted(PACKAGE.rglob("*.py"))
SPEC_FILES = sorted((PACKAGE / "spec").glob("*.py"))


def _package_of(path: Path) -> list[str]:
    """The package a library file's relative imports start from."""
    return list(path.relative_to(ROOT).parent.parts)


def _imported_modules(path: Path, package: list[str] | None = None) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `path`, relative ones resolved.

    `importlib.import_module("x")` and `__import__("x")` calls with a literal name count too.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _package_of(path) if package is None else package
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                up = node.level - 1
                base = package[: len(package) - up] if up < len(package) else ["<beyond top level>"]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            if node.module:
                found.append((node.lineno, prefix))
            else:
                found += [(node.lineno, f"{prefix}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def test_library_files_are_found():
    assert PACKAGE / "__init__.py" in LIBRARY_FILES
    assert PACKAGE / "spec" / "weight_spec.py" in SPEC_FILES


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_library_never_imports_zoo_or_tasks(path):
    bad = [(line, mod) for line, mod in _imported_modules(path) if mod.split(".")[0] in FORBIDDEN]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}: weightspace must not depend on zoo/ or tasks/"


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.name)
def test_spec_imports_only_itself_and_errors(path):
    bad = [
        (line, mod)
        for line, mod in _imported_modules(path)
        if mod.split(".")[0] == "weightspace"
        and not mod.startswith("weightspace.spec")
        and mod != "weightspace.errors"
    ]
    assert not bad, f"weightspace/spec/{path.name} imports {bad}: the spec may only use weightspace.errors"


def test_resolver_sees_relative_and_dynamic_imports(tmp_path):
    mods = {m for _, m in _imported_modules(PACKAGE / "spec" / "action.py")}
    assert {"weightspace.spec.element", "weightspace.errors"} <= mods
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import importlib\nimportlib.import_module('zoo.models')\nfrom tasks import train\n"
        "from ... import zoo\nfrom ..io import load\n"
    )
    mods = {m for _, m in _imported_modules(probe, ["weightspace", "spec"])}
    assert {"zoo.models", "tasks", "<beyond top level>.zoo", "weightspace.io"} <= mods
