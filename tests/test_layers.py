"""The package's layers follow the data flow, no module of a lower layer imports a higher one, and
no modules import each other in a cycle.

io → data (synth beside it) → models → decoding → training / evaluation / inference → cli. The
shared helpers at the top of the package (files, tmp, text, parallel, preprocessing) sit below them all.
Imports inside functions count as much as those at the top of a module.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "avsr"

LAYERS = {
    "avsr.errors": 0, "avsr.files": 0, "avsr.tmp": 0, "avsr.text": 0, "avsr.parallel": 0, "avsr.preprocessing": 0,
    "avsr.io": 1,
    "avsr.data": 2,
    "avsr.synth": 2.5,  # beside data: it writes manifests with data's helpers, data never uses it
    "avsr.models": 3,
    "avsr.decoding": 4,
    "avsr.training": 5, "avsr.evaluation": 5, "avsr.inference": 5,
    "avsr.cli": 6, "avsr.train": 6, "avsr": 6,  # the entry points, and the package's load_model/transcribe facade
}


def unit(module: str) -> str:
    """The layer-bearing unit of a dotted module name: ``avsr.io.media`` -> ``avsr.io``."""
    return ".".join(module.split(".")[:2])


def imports(package: Path = PACKAGE) -> list[tuple[str, str, int]]:
    """(importing module, imported module, line) for every import of ``avsr`` inside the package."""
    found = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path}:{node.lineno}: relative import; name the module from avsr"
                names = [node.module or ""]
            else:
                continue
            found += [(module, name, node.lineno) for name in names if name == "avsr" or name.startswith("avsr.")]
    return found


def test_every_package_module_has_a_layer():
    units = {unit(module) for module, _, _ in imports()} | {unit(name) for _, name, _ in imports()}
    assert units <= set(LAYERS), f"give these a layer in LAYERS: {sorted(units - set(LAYERS))}"


def upward_imports(package: Path = PACKAGE) -> list[str]:
    return [f"{module}:{line} imports {name}" for module, name, line in imports(package)
            if LAYERS[unit(name)] > LAYERS[unit(module)]]


def test_no_module_imports_a_higher_layer():
    upward = upward_imports()
    assert not upward, "imports against the data flow:\n" + "\n".join(upward)


def test_the_checker_catches_an_upward_import_inside_a_function(tmp_path):
    package = tmp_path / "avsr"
    (package / "models").mkdir(parents=True)
    (package / "models" / "net.py").write_text("import avsr.io.media\n\n\ndef fit():\n"
                                               "    from avsr.training.lightning import AVSRLightning\n")
    (package / "data").mkdir()
    (package / "data" / "corpus.py").write_text("from avsr.synth.corpus import synthesize_corpus\n")
    assert upward_imports(package) == ["avsr.data.corpus:1 imports avsr.synth.corpus",
                                       "avsr.models.net:5 imports avsr.training.lightning"]


def module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def dependencies(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Each module's imports of other modules of the package, at the top or inside functions.
    ``from avsr.a import b`` names the module ``avsr.a.b`` where there is one, else ``avsr.a``; an
    import of a name inside a module (``from avsr.a.b import name``) names ``avsr.a.b``. The
    package's own ``avsr`` facade and a module's enclosing packages (imported with it anyway) are
    left out: importing them closes no cycle of their making."""
    paths = sorted(package.rglob("*.py"))
    modules = {module_name(path, package) for path in paths}
    graph: dict[str, set[str]] = defaultdict(set)
    for path in paths:
        module = module_name(path, package)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                           for alias in node.names]
            else:
                continue
            for target in targets:
                while target not in modules and "." in target:  # import avsr.a.b.name: the module avsr.a.b
                    target = target.rsplit(".", 1)[0]
                if target in modules and target != "avsr" and not module.startswith(target + ".") and target != module:
                    graph[module].add(target)
    return graph


def import_cycles(package: Path = PACKAGE) -> list[list[str]]:
    """One cycle per group of modules that import each other, as ``[a, b, ..., a]`` (Tarjan's
    strongly connected components, then a shortest way round from the group's first module)."""
    graph = dependencies(package)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while not group or group[-1] != module:
                group.append(stack.pop())
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return [_way_round(group, graph) for group in sorted(groups)]


def _way_round(group: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest cycle from ``group[0]`` back to itself inside ``group`` (breadth first)."""
    start, inside = group[0], set(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for module in frontier:
            for target in sorted(graph.get(module, set()) & inside):
                if target == start:
                    return paths[module] + [start]
                if target not in paths:
                    paths[target] = paths[module] + [target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"no way round {group}")  # a strongly connected group always has one


def test_no_modules_import_each_other_in_a_cycle():
    cycles = import_cycles()
    assert not cycles, ("import cycles (move what both need into a light module of its own):\n"
                        + "\n".join(" -> ".join(cycle) for cycle in cycles))


def test_the_cycle_checker_catches_a_cycle_through_a_lazy_import(tmp_path):
    package = tmp_path / "avsr"
    (package / "io").mkdir(parents=True)
    (package / "models").mkdir()
    (package / "__init__.py").write_text("def load():\n    from avsr.models.net import Net\n")
    (package / "io" / "__init__.py").write_text("from avsr.io.media import load_media\n")
    (package / "io" / "media.py").write_text("import numpy\nfrom avsr.io.options import MediaOptions\n")
    (package / "io" / "options.py").write_text("import avsr.io\n\n\ndef check():\n    from avsr.io import media\n")
    (package / "models" / "net.py").write_text("import avsr\nfrom avsr.io.media import load_media\n")
    # avsr.io.options -> avsr.io is its own package and avsr.models.net -> avsr the facade: not cycles.
    assert import_cycles(package) == [["avsr.io.media", "avsr.io.options", "avsr.io.media"]]
    (package / "io" / "options.py").write_text("import avsr.io\n")
    assert import_cycles(package) == []
