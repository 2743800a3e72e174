"""The package layering of docs/ARCHITECTURE.md, checked on the source: imports point down only.

Every ``interpkit.*`` import in a package's modules (at the top or inside a function, relative or
absolute; ``if TYPE_CHECKING`` blocks included) must name a package (or private root module)
earlier in `ORDER`. When this fails, move the helper down (to the lowest
package both sides may import) rather than reordering the list; when a new package is added, put
it in `ORDER` and in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "interpkit"

#: packages in data-flow order, after the shared private helpers at the root; each may import only
#: those before it
ORDER = [
    "_constants", "_version", "_io", "_lazy", "_registry", "_http",
    "records", "table", "models", "_testing", "_doctor", "sources", "criterion",
    "rank", "causal", "sae", "explain", "circuits", "match", "bench",
    "report", "viz", "inspect", "dossier", "widgets",
    "demo", "runs", "cli", "__main__",
]


def _package(path: Path) -> str:
    parts = path.relative_to(ROOT).parts
    return "(root)" if parts == ("__init__.py",) else parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = list(path.relative_to(ROOT).parent.parts)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                out.append((node.lineno, ".".join(["interpkit", *base, *([node.module] if node.module else [])])))
            elif node.module:
                out.append((node.lineno, node.module))
    return [(line, name.split(".")[1]) for line, name in out if name.startswith("interpkit.")]


def test_every_package_is_in_the_order():
    found = {_package(p) for p in ROOT.rglob("*.py")} - {"(root)"}
    assert found <= set(ORDER), f"packages missing from ORDER: {sorted(found - set(ORDER))}"


def test_imports_point_down_the_layers():
    rank = {name: i for i, name in enumerate(ORDER)}
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        src = _package(path)
        if src == "(root)":
            continue  # the package root re-exports the public API of every layer
        for line, target in _imports(path):
            if target != src and rank[target] >= rank[src]:
                wrong.append(f"{path.relative_to(ROOT.parent)}:{line}: {src} imports {target}")
    assert wrong == [], "imports against docs/ARCHITECTURE.md's layer order:\n" + "\n".join(wrong)
