"""The house rules of src/lods (docs/architecture.md), read from the source with `ast` (nothing is imported):
no import cycle between modules or between packages, dependencies one way down the layers, no module over 400
lines, no private name imported from another module. Imports inside functions count like any other."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_LINES = 400

# Lower layers first. A package (first-level subpackage of lods) or top-level module may import its own layer or a
# lower one; the cycle tests keep imports within a layer one way. "lods" is lods/__init__.py.
LAYERS = [
    {"lods", "errors", "config", "utils", "runs"},
    {"render"},
    {"world", "priors"},
    {"scenes", "guidance"},
    {"export", "evaluate"},
    {"pipelines", "presets"},
    {"bench"},
    {"cli", "viewer"},
]


# ---------------------------------------------------------------------------------------------- the import graph
def modules(src: Path = SRC) -> dict[str, Path]:
    """Dotted module name → file, for every module under src/lods (a package is its __init__.py)."""
    out = {}
    for path in sorted((src / "lods").rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _target(name: str, mods: dict[str, Path]) -> str | None:
    """The lods module an imported dotted name lives in (its longest known prefix), or None outside lods."""
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def imports(src: Path = SRC) -> list[tuple[str, str, str, int]]:
    """(importer, imported module, imported name or "", line) for every import of a lods module, anywhere in a file."""
    mods = modules(src)
    found = []
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = _target(alias.name, mods)
                    if target:
                        found.append((mod, target, "", node.lineno))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(base + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in mods:  # `from package import module`
                        found.append((mod, sub, "", node.lineno))
                    else:
                        target = _target(base, mods)
                        if target:
                            found.append((mod, target, alias.name, node.lineno))
    return [f for f in found if f[0] != f[1]]


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "lods"


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted; sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


def _graph(pairs) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for a, b in pairs:
        edges.setdefault(a, set()).add(b)
    return edges


def module_cycles(src: Path = SRC) -> list[list[str]]:
    return cycles(_graph((a, b) for a, b, _, _ in imports(src)))


def package_cycles(src: Path = SRC) -> list[list[str]]:
    return cycles(_graph((package_of(a), package_of(b)) for a, b, _, _ in imports(src)
                         if package_of(a) != package_of(b)))


def _where(edges: list[tuple[str, str, str, int]]) -> str:
    return "\n".join(f"  {a} -> {b}{'.' + n if n else ''} (line {line})" for a, b, n, line in edges)


def layering_violations(src: Path = SRC) -> list[str]:
    layer = {name: i for i, names in enumerate(LAYERS) for name in names}
    out = []
    for a, b, name, line in imports(src):
        pa, pb = package_of(a), package_of(b)
        for p in (pa, pb):
            if p not in layer:
                out.append(f"{p} ({a}) is in no layer of LAYERS")
        if pa in layer and pb in layer and layer[pb] > layer[pa]:
            out.append(f"{pa} imports {pb}, a higher layer: {a} -> {b} (line {line})")
    return sorted(set(out))


def private_imports(src: Path = SRC) -> list[str]:
    """`from .x import _y` across modules: a private name (one leading underscore, not a dunder) of another module."""
    return [f"{a} imports {n} from {b} (line {line})" for a, b, n, line in imports(src)
            if n.startswith("_") and not n.startswith("__")]


def long_modules(src: Path = SRC, limit: int = MAX_LINES) -> list[str]:
    out = []
    for mod, path in modules(src).items():
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > limit:
            out.append(f"{path.relative_to(src)}: {n} lines")
    return out


# ---------------------------------------------------------------------------------------------- the rules
def test_the_walk_sees_every_kind_of_import(tmp_path):
    """Relative, absolute, `from . import module`, and imports inside functions are all edges; a cycle through a
    lazy import is found; a private name is reported."""
    pkg = tmp_path / "lods"
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("")
    (pkg / "a" / "x.py").write_text("from . import y\nimport lods.errors\n")
    (pkg / "a" / "y.py").write_text("def f():\n    from .x import _helper\n")
    (pkg / "b.py").write_text("def g():\n    from lods.a.x import thing\n")
    (pkg / "errors.py").write_text("def h():\n    from .b import g\n")
    found = {(a, b, n) for a, b, n, _ in imports(tmp_path)}
    assert ("lods.a.x", "lods.a.y", "") in found and ("lods.a.y", "lods.a.x", "_helper") in found
    assert ("lods.a.x", "lods.errors", "") in found and ("lods.b", "lods.a.x", "thing") in found
    assert module_cycles(tmp_path) == [["lods.a.x", "lods.a.y", "lods.b", "lods.errors"]]
    assert package_cycles(tmp_path) == [["a", "b", "errors"]]
    assert private_imports(tmp_path) == ["lods.a.y imports _helper from lods.a.x (line 2)"]


def test_no_import_cycle_between_modules():
    found = module_cycles()
    assert not found, "import cycles between modules:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_import_cycle_between_packages():
    found = package_cycles()
    detail = []
    for comp in found:
        detail.append(" <-> ".join(comp) + ":")
        detail.append(_where([e for e in imports() if package_of(e[0]) in comp and package_of(e[1]) in comp
                              and package_of(e[0]) != package_of(e[1])]))
    assert not found, "import cycles between packages:\n" + "\n".join(detail)


def test_dependencies_run_one_way_down_the_layers():
    found = layering_violations()
    assert not found, "imports against docs/architecture.md's layering:\n" + "\n".join(found)


def test_no_private_name_is_imported_from_another_module():
    found = private_imports()
    assert not found, "private names imported across modules (make them public or move them):\n" + "\n".join(found)


def test_no_module_over_400_lines():
    found = long_modules()
    assert not found, f"modules over {MAX_LINES} lines (split them by concern):\n" + "\n".join(found)
