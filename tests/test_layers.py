"""The package's layers follow the data flow, and no module of a lower layer imports a higher one.

io → data (synth beside it) → models → decoding → training / evaluation / inference → cli. The
shared helpers at the top of the package (files, text, parallel, preprocessing) sit below them all.
Imports inside functions count as much as those at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "avsr"

LAYERS = {
    "avsr.errors": 0, "avsr.files": 0, "avsr.text": 0, "avsr.parallel": 0, "avsr.preprocessing": 0,
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
