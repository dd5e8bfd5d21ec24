"""The architecture in the tree: subpackages import one way, and nobody reads private names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import tiertrace

PACKAGE = Path(tiertrace.__file__).parent
# DESIGN §8, from the top down: each may import only what stands below it. The command line
# stands above the public API: it is an application of it, and `import tiertrace` never loads it.
ORDER = (
    "_cli",
    "__init__",
    "_runtime",
    "_memory",
    "_instrument",
    "_lookups",
    "_advisor",
    "_core",
    "_contract",
)
LEAVES = {"_version"}  # importable from anywhere


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        found[name] = ast.parse(path.read_text(encoding="utf-8"))
    return found


def _imports(tree: ast.Module) -> list[tuple[str, list[str], int]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            out.extend((a.name, [], node.lineno) for a in node.names)
    return out


def test_subpackages_import_only_what_stands_below_them() -> None:
    wrong = []
    for name, tree in _modules().items():
        mine = _layer(name)
        for target, _names, line in _imports(tree):
            if not target.startswith("tiertrace"):
                continue
            theirs = _layer(target)
            if theirs in LEAVES or theirs == mine:
                continue
            if ORDER.index(theirs) < ORDER.index(mine):
                wrong.append(f"{name}:{line} imports {target}")
    assert wrong == []


def test_no_module_imports_another_modules_private_names() -> None:
    wrong = []
    for name, tree in _modules().items():
        for target, names, line in _imports(tree):
            if not target.startswith("tiertrace") or target == name:
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                wrong.append(f"{name}:{line} imports {private} from {target}")
    assert wrong == []


def test_the_contract_imports_nothing_of_tiertrace() -> None:
    for name, tree in _modules().items():
        if _layer(name) == "_contract":
            outside = [
                t
                for t, _n, _l in _imports(tree)
                if t.startswith("tiertrace") and not t.startswith("tiertrace._contract")
            ]
            assert outside == [], name


def test_importing_tiertrace_loads_no_instrumentor_cli_or_client_library() -> None:
    probe = (
        "import sys, tiertrace; print(sorted(m for m in sys.modules if m.startswith("
        "('tiertrace._instrument.', 'tiertrace._cli', 'redis', 'psycopg', 'chromadb'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "['tiertrace._instrument.registry']"
