"""Imports run one way down the layers: base modules (errors, paths, progress, io, registry, contracts,
config, runtime) < data and synthetic < models < train < evaluate < track < runner, sweeps, score < cli. Every
import is read from the source, the ones inside functions too."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "eegbench"
# the packages each layer must not import
FORBIDDEN = {
    "data": {"models", "train", "evaluate", "track"},
    "synthetic": {"train", "evaluate", "track"},
    "models": {"train", "evaluate", "track"},
    "train": {"evaluate", "track"},
    "evaluate": {"train", "track"},
}
BASE = {"errors", "paths", "progress", "io", "registry", "contracts", "config", "runtime"}


def imports(path: Path) -> set[str]:
    """Every ``eegbench.*`` module ``path`` imports, as ``package.module`` below eegbench."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
        out |= {n.removeprefix("eegbench.") for n in names if n.startswith("eegbench.")}
    return out


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")


def test_no_import_runs_up_the_layers():
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = module_name(path).split(".")[0]
        for target in imports(path):
            if target.split(".")[0] in FORBIDDEN.get(layer, ()):
                found.add((module_name(path), target))
    assert found == set()


def test_base_modules_import_only_base_modules():
    for name in sorted(BASE):
        path = PACKAGE / f"{name}.py"
        assert {t.split(".")[0] for t in imports(path)} <= BASE, name
