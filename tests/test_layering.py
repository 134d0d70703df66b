"""The import rules of the layout (DEVELOPING.md), read from the source with `ast`.

Every `import` counts, at module level or inside a function (a lazy import still makes a
dependency), except those under `if TYPE_CHECKING:`. The rules:
- `piti_cli` never imports `benchmarks` or `recipes`, and the core (all of it but the front
  ends — `cli/`, `api`, `app`, which run `piti prep`'s producers) never imports `piti_cli.data_prep`;
- only `piti_cli/cli/` imports typer or rich; in `piti_cli`, only `app.py` imports gradio;
- `piti_cli/diffusion/` imports no network code (`piti_cli.models`) and no pipeline;
- there is no import circle inside `piti_cli`, between its modules or between its packages
  (`pipeline/` and `train/` never import each other both ways).
The last test plants each violation in a scratch tree and checks that it is found.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("piti_cli", "recipes", "benchmarks")
PRODUCERS = ("piti_cli.data_prep",)  # the offline producers behind `piti prep`
FRONT_ENDS = ("piti_cli.cli", "piti_cli.api", "piti_cli.app")  # the user-facing layers over the core
SCRIPTS = ("benchmarks", "recipes")
UI = ("typer", "rich")
NETWORKS = ("piti_cli.models", "piti_cli.pipeline")


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def import_graph(root: Path, packages=PACKAGES) -> dict[str, set[str]]:
    """module -> the modules it imports (`from a import b` names `a.b` when that is a module)."""
    files = {module_name(root, p): p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or _type_checking_only(node, parents):
                continue
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in files else base)
        graph[name] = targets - {name}
    return graph


def _within(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if _within(module, ("piti_cli",)) and _within(target, SCRIPTS):
                found.append(f"{module} imports {target}: piti_cli must not depend on the scripts")
            if (_within(module, ("piti_cli",)) and not _within(module, FRONT_ENDS + PRODUCERS)
                    and _within(target, PRODUCERS)):
                found.append(f"{module} imports {target}: the core must not depend on the offline producers")
            if not _within(module, ("piti_cli.cli",)) and _within(target, UI):
                found.append(f"{module} imports {target}: only piti_cli/cli/ may import typer or rich")
            if _within(module, ("piti_cli",)) and module != "piti_cli.app" and _within(target, ("gradio", "gradio_client")):
                found.append(f"{module} imports {target}: only piti_cli/app.py may import gradio")
            if _within(module, ("piti_cli.diffusion",)) and _within(target, NETWORKS):
                found.append(f"{module} imports {target}: diffusion/ knows no network and no pipeline")
    return found


def cycles(graph: dict[str, set[str]], within: str = "piti_cli") -> list[list[str]]:
    """The import circles among `within`'s modules (strongly connected components, Tarjan)."""
    nodes = {m for m in graph if _within(m, (within,))}
    edges = {m: sorted(t for t in graph[m] if t in nodes) for m in nodes}
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def test_the_layout_keeps_its_import_rules():
    found = violations(import_graph(REPO))
    assert not found, "\n".join(found)


def test_no_import_circles_in_the_core():
    found = cycles(import_graph(REPO))
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph collapsed onto `piti_cli`'s packages (`piti_cli.train`, ...; a top-level
    module such as `piti_cli.errors` is its own node)."""
    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])
    out: dict[str, set[str]] = {}
    for module, targets in graph.items():
        if _within(module, ("piti_cli",)):
            out.setdefault(package(module), set()).update(package(t) for t in targets if _within(t, ("piti_cli",)))
    return {k: v - {k} for k, v in out.items()}


def test_no_import_circles_between_packages():
    found = cycles(package_graph(import_graph(REPO)))
    assert not found, "package circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_a_planted_package_circle_is_found(tmp_path):
    for pkg in ("piti_cli/train", "piti_cli/pipeline"):
        (tmp_path / pkg).mkdir(parents=True)
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "piti_cli/__init__.py").write_text("")
    (tmp_path / "piti_cli/train/loop.py").write_text("from piti_cli.pipeline import cascade\n")
    (tmp_path / "piti_cli/pipeline/cascade.py").write_text("x = 1\n")
    (tmp_path / "piti_cli/pipeline/sample.py").write_text("from piti_cli.train import dist\n")
    (tmp_path / "piti_cli/train/dist.py").write_text("y = 2\n")
    graph = import_graph(tmp_path, ("piti_cli",))
    assert cycles(graph) == []  # no module circle ...
    assert cycles(package_graph(graph)) == [["piti_cli.pipeline", "piti_cli.train"]]  # ... but a package one


@pytest.mark.parametrize("plant, expected", [
    ("piti_cli/train/extra.py", "from piti_cli.data_prep import masks\n"),
    ("piti_cli/cli/extra.py", "from recipes.harness import train_for\n"),
    ("piti_cli/metrics/extra.py", "def f():\n    import rich.console\n"),
    ("piti_cli/data_prep/extra.py", "import typer\n"),
    ("piti_cli/pipeline/extra.py", "def f():\n    import gradio\n"),
    ("piti_cli/diffusion/extra.py", "from ..models.unet import UNet\n"),
    ("piti_cli/diffusion/other.py", "from piti_cli.pipeline import cascade\n"),
])
def test_a_planted_violation_is_found(tmp_path, plant, expected):
    for pkg in ("piti_cli/train", "piti_cli/metrics", "piti_cli/diffusion", "piti_cli/models",
                "piti_cli/pipeline", "piti_cli/cli", "piti_cli/data_prep", "recipes"):
        (tmp_path / pkg).mkdir(parents=True, exist_ok=True)
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "piti_cli/__init__.py").write_text("")
    (tmp_path / "piti_cli/cli/main.py").write_text("import typer\nfrom rich.console import Console\n")
    (tmp_path / "piti_cli/cli/prep.py").write_text("def f():\n    from piti_cli.data_prep import pack\n")  # allowed
    (tmp_path / plant).write_text(expected)
    found = violations(import_graph(tmp_path, ("piti_cli", "recipes")))
    module = module_name(tmp_path, tmp_path / plant)
    assert len(found) == 1 and found[0].startswith(f"{module} imports "), found


def test_a_planted_circle_is_found(tmp_path):
    (tmp_path / "piti_cli/metrics").mkdir(parents=True)
    (tmp_path / "piti_cli/__init__.py").write_text("")
    (tmp_path / "piti_cli/metrics/__init__.py").write_text("")
    (tmp_path / "piti_cli/metrics/a.py").write_text("from piti_cli.metrics.b import f\n")
    (tmp_path / "piti_cli/metrics/b.py").write_text("def f():\n    from piti_cli.metrics import c\n")
    (tmp_path / "piti_cli/metrics/c.py").write_text("from . import a\n")
    (tmp_path / "piti_cli/metrics/d.py").write_text("from piti_cli.metrics import a\n")
    graph = import_graph(tmp_path, ("piti_cli",))
    assert cycles(graph) == [["piti_cli.metrics.a", "piti_cli.metrics.b", "piti_cli.metrics.c"]]
