"""The import graph of the lwgen package, read from the source (imports inside functions too)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def module_name(path: Path) -> str:
    """``lwgen/export/bundle.py`` → ``lwgen.export.bundle``; ``pkg/__init__.py`` → ``pkg``."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def lwgen_imports(path: Path) -> set[str]:
    """Every ``lwgen`` name the file imports: modules, and ``module.name`` for ``from`` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {name for name in found if name.split(".")[0] == "lwgen"}


def module_graph() -> dict[str, set[str]]:
    """Module → the lwgen modules it imports (its own ancestor packages left out)."""
    files = {module_name(p): p for p in (ROOT / "lwgen").rglob("*.py")}
    return {
        name: {
            m
            for m in lwgen_imports(path)
            if m in files and m != name and not name.startswith(m + ".")
        }
        for name, path in files.items()
    }
