"""A hash of the ws2s source a pipeline step runs, for Snakemake's params trigger.

Snakemake's code trigger sees a rule's own shell text, not the modules it imports. Each
rule therefore carries `code=code_version(MODULE)` in its params: the hash of MODULE's
code and of every ws2s module it imports, transitively. A code change in any of them
changes the hash, and Snakemake reruns exactly the steps whose code changed. The code is
hashed as its syntax tree without docstrings (comments and layout are not in the tree),
so an edit that cannot change a result (a comment, a docstring, reformatting) reruns
nothing. The tree's form is Python's: a new Python version may change every hash once.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent


def _module_file(module: str) -> Path | None:
    parts = module.split(".")
    if parts[0] != "ws2s":
        return None
    base = PACKAGE_ROOT.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("ws2s")}


@lru_cache(maxsize=None)
def module_closure(module: str) -> tuple[Path, ...]:
    """The source files of `module` and every ws2s module it imports, transitively."""
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if path is None or name in seen:
            continue
        seen[name] = path
        # A package's __init__ runs on import of any of its submodules.
        parent = name.rsplit(".", 1)[0]
        todo.extend(_imports(path) | ({parent} if "." in name else set()))
    return tuple(sorted(set(seen.values())))


def _code(path: Path) -> bytes:
    return _tree_without_docstrings(path.read_text())


@lru_cache(maxsize=None)
def _tree_without_docstrings(source: str) -> bytes:
    """A module's syntax tree without docstrings, as text: what running it depends on.
    Cached by the source itself: each rule hashes the modules it runs, and parsing every
    closure anew cost about 2 s at each workflow load."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]
    return ast.dump(tree).encode()


def code_version(*modules: str) -> str:
    """sha1 (12 hex digits) of the code `modules` run."""
    missing = [m for m in modules if _module_file(m) is None]
    if missing:  # a moved or renamed module would otherwise hash to nothing and never rerun
        raise ValueError(f"code_version: no ws2s module {', '.join(missing)}")
    digest = hashlib.sha1()
    for path in sorted({p for m in modules for p in module_closure(m)}):
        digest.update(path.relative_to(PACKAGE_ROOT).as_posix().encode())
        digest.update(_code(path))
    return digest.hexdigest()[:12]
