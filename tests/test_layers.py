"""The package order, enforced: every import in src/interlock points down, and packages form no cycle.

The order is written once, here and in the README's Architecture section. A package may import any
package below it and the ground floor; a package never imports one above it or beside it on the same
rank. Imports under `if TYPE_CHECKING:` count too: a type that points up is still a dependency upward.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "interlock"

# Top to bottom. Packages on one line share a rank and may not import each other.
LAYERS: list[tuple[str, ...]] = [
    ("cli", "testing"),
    ("server",),
    ("app",),
    ("api", "ui"),
    ("admin",),
    ("gateway", "mcp"),
    ("flywheel",),
    ("guardrails", "observability", "agents"),
    ("governance",),
    ("audit",),
    ("auth",),
    ("routing",),
    ("providers",),
    ("translate",),
    ("engines",),
    ("store",),
]
GROUND = ("types", "errors", "settings", "plugins", "background", "__init__")


def _rank() -> dict[str, int]:
    rank = {name: i for i, names in enumerate(LAYERS) for name in names}
    rank.update({name: len(LAYERS) for name in GROUND})
    return rank


def _package_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, first-level interlock package) for every `interlock.X` import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "interlock":
                continue
            if len(parts) > 1:
                found.append((node.lineno, parts[1]))
            else:  # from interlock import x
                found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "interlock" and len(parts) > 1:
                    found.append((node.lineno, parts[1]))
    return found


def _edges() -> dict[tuple[str, str], str]:
    edges: dict[tuple[str, str], str] = {}
    for path in sorted(SRC.rglob("*.py")):
        src = _package_of(path)
        for line, dst in _imports(path):
            if dst != src:
                edges.setdefault((src, dst), f"{path.relative_to(SRC.parent)}:{line}")
    return edges


def test_every_module_has_a_rank() -> None:
    rank = _rank()
    unranked = sorted({_package_of(p) for p in SRC.rglob("*.py")} - rank.keys())
    assert not unranked, f"add these packages to LAYERS (and the README's Architecture section): {unranked}"


def test_imports_point_down() -> None:
    rank = _rank()
    wrong = [
        f"{where}: {src} imports {dst}"
        for (src, dst), where in _edges().items()
        if dst in rank and src in rank and rank[dst] <= rank[src] and not (src in GROUND and dst in GROUND)
    ]
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_no_cycles_between_packages() -> None:
    graph: dict[str, set[str]] = {}
    for src, dst in _edges():
        graph.setdefault(src, set()).add(dst)
    seen: set[str] = set()
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in stack:
            return [*stack[stack.index(node) :], node]
        if node in seen:
            return None
        seen.add(node)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            cycle = visit(nxt)
            if cycle:
                return cycle
        stack.pop()
        return None

    for start in sorted(graph):
        cycle = visit(start)
        assert cycle is None, "a cycle between packages: " + " -> ".join(cycle)


def test_the_layer_test_sees_a_wrong_import(tmp_path: Path) -> None:
    """The walk finds imports in every form (so a passing run means something)."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import interlock.api.http\nfrom interlock.gateway import pipeline\nfrom interlock import settings\n"
        "if True:\n    from interlock.cli.main import main\n"
    )
    assert [pkg for _, pkg in _imports(probe)] == ["api", "gateway", "settings", "cli"]
