"""The package's layers import one way: cli -> explore (the web page) -> experiments -> (training, methods, latent,
report, evaluation) -> (models, data) -> the foundation (errors, config, compute, distributed, io, threads,
progress, launch, host). Nothing imports a layer
above its own, and no two packages of one layer import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import latentspectra

ROOT = Path(latentspectra.__file__).parent
LAYERS = {
    "errors": 0,
    "config": 0,
    "compute": 0,
    "distributed": 0,
    "io": 0,
    "threads": 0,
    "progress": 0,
    "launch": 0,
    "host": 0,
    "models": 1,
    "data": 1,
    "training": 2,
    "methods": 2,
    "latent": 2,
    "report": 2,
    "evaluation": 2,
    "disentanglement": 2,
    "intervals": 2,
    "experiments": 3,
    "explore": 4,
    "cli": 5,
    "__main__": 5,
    "__init__": 5,
}


def unit(path: Path) -> str:
    """The top-level module or package a source file belongs to."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return parts[0]


def imported_units(path: Path) -> set[str]:
    """The top-level units of the package that ``path`` imports (relative or absolute imports)."""
    tree = ast.parse(path.read_text())
    depth = len(path.relative_to(ROOT).parts) - 1  # packages between the package root and the file
    units = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                up = node.level - 1
                if up > depth:
                    continue
                base = list(path.relative_to(ROOT).parts[: depth - up])
                target = base + (node.module.split(".") if node.module else [])
                names = [alias.name for alias in node.names]
                units.add(target[0] if target else names[0])
            elif node.module and node.module.split(".")[0] == "latentspectra" and "." in node.module:
                units.add(node.module.split(".")[1])
    return units


def test_no_module_imports_a_layer_above_its_own():
    offenders = []
    for path in ROOT.rglob("*.py"):
        own = unit(path)
        for other in imported_units(path) - {own}:
            if other in LAYERS and LAYERS[other] > LAYERS[own]:
                offenders.append(f"{path.relative_to(ROOT)} imports {other}")
    assert offenders == []


def test_no_two_packages_import_each_other():
    imports: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        imports.setdefault(unit(path), set()).update(imported_units(path) - {unit(path)})
    cycles = sorted(
        f"{a} <-> {b}" for a, targets in imports.items() for b in targets if a < b and a in imports.get(b, set())
    )
    assert cycles == []


def test_every_source_file_belongs_to_a_known_layer():
    assert {unit(path) for path in ROOT.rglob("*.py")} <= set(LAYERS)


def test_a_study_imports_neither_another_study_nor_training():
    """Only `train` (and `reproduce`, whose --retrain trains) reach training; the studies share `common`,
    `networks`, `image_latents` (how real images become latents) and `codes` (a model's codes with their decoder),
    never each other's modules (`basis` is the latent sets' step that `reproduce` and `reds` run, `sharded_sets` how
    its sets are drawn over ranks, and `finished_sets` what a rerun of it resumes from)."""
    shared = {"common", "networks", "image_latents", "codes", "basis", "sharded_sets", "finished_sets"}
    offenders = []
    for path in (ROOT / "experiments").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level == 1 and node.module and node.module.split(".")[0] not in shared | {"train"}:
                offenders.append(f"{path.name} imports .{node.module}")
            if node.level == 1 and node.module == "train" and path.stem not in ("reproduce",):
                offenders.append(f"{path.name} imports .train")
            if node.level == 2 and node.module and node.module.startswith("training") and path.stem != "train":
                offenders.append(f"{path.name} imports ..{node.module}")
    assert offenders == []


def test_the_command_line_answers_help_data_info_and_bad_arguments_without_torch():
    """`latentspectra --help`, `data info` and an argument error import neither torch nor anything that does
    (torch is imported when a command runs networks)."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from latentspectra.cli import main\n"
        "for args in (['--help'], ['basis', '--help'], ['data', 'info', 'mnist'], ['basis', '--per-set', '0'],"
        " ['compare', '--device', 'banana']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip().splitlines()[-1] == "False", done.stdout[-500:]
