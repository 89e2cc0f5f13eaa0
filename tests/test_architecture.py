"""The package layout's rules: data flows one way (app -> training -> data, core), and the core is a library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "survmom"
# What each layer may import from survmom (besides its own package and the shared leaf modules).
SHARED = {"survmom", "survmom.errors", "survmom.atomic", "survmom.system", "survmom.choices"}
ALLOWED = {
    "core": set(),
    "data": set(),
    "training": {"core", "data"},
    "app": {"core", "data", "training"},
}


def _survmom_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "survmom":
                found.update(f"survmom.{alias.name}" for alias in node.names)
            elif node.module.startswith("survmom."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("survmom"))
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(layer):
    wrong = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for module in sorted(_survmom_imports(path)):
            parts = module.split(".")
            if module in SHARED or parts[1] == layer or (len(parts) == 2 and module == "survmom.__version__"):
                continue
            if parts[1] not in ALLOWED[layer]:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert wrong == []


def test_shared_modules_import_no_layer():
    for name in ("errors.py", "atomic.py", "system.py", "choices.py"):
        imports = _survmom_imports(PACKAGE / name)
        assert imports <= SHARED, (name, imports)


def test_the_core_imports_with_the_cli_and_data_stack_blocked():
    blocked = ("pandas", "pyarrow", "typer", "rich", "yaml", "matplotlib")
    core = sorted(p.stem for p in (PACKAGE / "core").glob("*.py") if p.stem != "__init__")
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {blocked!r}:\n"
        "            raise ImportError(f'blocked: {name}')\n"
        "sys.meta_path.insert(0, Block())\n"
        + "".join(f"import survmom.core.{name}\n" for name in core)
        + "print('ok')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"
    assert len(core) >= 8
