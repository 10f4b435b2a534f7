"""The CIFAR-2 and MNIST experiments on the offline stand-in data of ../shared/data (`make standin`).

    .venv/bin/python benchmarks/standin.py                 # 1.5-2 h on 2 CPU cores
    .venv/bin/python benchmarks/standin.py --only mlp_mnist mlp_mnist_shuffled \\
        --extra-config one_epoch.yaml                      # a quick check of this script

MNIST is the genuine one (../shared/data/MNIST/raw, read through data_mirror); CIFAR-10 is
../shared/data/cifar10-jpeg.zip, CIFAR-10 re-encoded as JPEG, read as an imagefolder dataset
whose note stamps every page of the paper: results on it are not CIFAR-10 results.

The run happens in build/standin/ (git-ignored): the workflow's code is copied there afresh
each time (modification times kept, files gone from the checkout removed), while its data/,
results/, logs/ and .snakemake/ stay, so a second run only redoes what changed. The script
writes build/standin/standin.yaml (the overrides of config.yaml), runs Snakemake there to the
claims table, the accuracy-vs-gradient-quality figure and paper/main.pdf, then prints each
claim's measured value, comparison and verdict, each experiment's accuracy, and where the
figure and the PDF are. Epochs are config.yaml's.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from whitebox.paper.findings import RELATION_WORDS  # noqa: E402

SHARED_DATA = REPO.parent / "shared" / "data"
CIFAR_JPEG = SHARED_DATA / "cifar10-jpeg.zip"
MNIST_RAW = SHARED_DATA / "MNIST" / "raw"
WORKSPACE = REPO / "build" / "standin"
NOTE = "CIFAR-10 re-encoded as JPEG (stand-in), not CIFAR-10"
# The CIFAR-2 and MNIST experiments of the "beyond the log" claims and those their claims,
# findings and random-label twins compare with (only_experiments must be closed under those).
EXPERIMENTS = [
    "lenet_unconstrained", "lenet_unconstrained_robust", "positive_lenet", "positive_lenet_affine",
    "positive_lenet_shuffled", "directional", "mlp_mnist", "mlp_mnist_shuffled", "mlp_mnist_robust",
    "inh_mnist", "inh_mnist_naive", "inh_mnist_flipped", "inh_cifar2", "inh_cifar2_pixels",
    "semantic_perspective", "semantic_perspective_spread03", "semantic_perspective_spread05",
]
ACCURACY_QUALITY = "results/summary/accuracy_vs_gradient_quality.png"
CLAIMS = "results/summary/claims.csv"
ACCURACIES = "results/summary/experiments.csv"
PAPER = "paper/main.pdf"
# What the workflow needs, without what it makes (tests/integration/workspace.py copies the same).
COPIED = ["Snakefile", "config.yaml", "workflow", "profiles", "src", "paper"]
GENERATED = ("generated", "main.pdf", "*.aux", "*.log", "*.fls", "*.fdb_latexmk", "*.bbl", "*.blg",
             "*.out", "*.toc", "__pycache__", "*.pyc")


def _generated(path: Path) -> bool:
    return any(fnmatch.fnmatch(part, pattern) for part in path.parts for pattern in GENERATED)


def sync_code(workspace: Path) -> None:
    """Copy the workflow's code into ``workspace`` (shutil.copy2: modification times kept, so
    nothing reruns for a copy) and remove the files the checkout no longer has; what the
    workflow generates there stays."""
    workspace.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        source, target = REPO / name, workspace / name
        if source.is_file():
            shutil.copy2(source, target)
            continue
        wanted = {p.relative_to(source) for p in source.rglob("*")
                  if p.is_file() and not _generated(p.relative_to(source))}
        for relative in sorted(wanted):
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / relative, target / relative)
        if target.is_dir():
            for path in list(target.rglob("*")):
                relative = path.relative_to(target)
                if path.is_file() and relative not in wanted and not _generated(relative):
                    path.unlink()


def overrides(only: list[str]) -> dict:
    """standin.yaml: the stand-in data, CPU, one seed, and the experiments to run."""
    return {
        "datasets": {"cifar10": {"source": "imagefolder", "path": str(CIFAR_JPEG), "note": NOTE}},
        "data_mirror": str(SHARED_DATA),  # MNIST/raw/, read in place
        "gpu_experiments": "skip",
        "seeds": [0],
        "device": "cpu",
        "only_experiments": only,
    }


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as table:
        return list(csv.DictReader(table))


def _number(mean: str, std: str) -> str:
    return "--" if mean == "" else f"{float(mean):.4g} ± {float(std):.2g}"


def _comparison(row: dict[str, str]) -> str:
    words = RELATION_WORDS.get(row["relation"], row["relation"])
    if row["than"]:
        return f"{words} {row['than']} ({_number(row['compared_mean'], row['compared_std'])})"
    return f"{words} {row['value']}"


def report(workspace: Path, only: list[str]) -> str:
    """The claims of the experiments run (measured value, comparison, verdict), their
    accuracies, and where the figure and the PDF are."""
    claims = [row for row in read_csv(workspace / CLAIMS) if row["experiment"] in only]
    accuracies = [row for row in read_csv(workspace / ACCURACIES) if row["experiment"] in only]
    lines = [f"Stand-in data: cifar10 is {NOTE}; MNIST is the genuine one. One seed.", "",
             f"Claims ({len(claims)}; those that compare with an experiment not run are "
             "untested, see the paper's claims summary):"]
    for row in claims:
        lines.append(f"  {row['experiment']}: {row['metric']} "
                     f"{_number(row['measured_mean'], row['measured_std'])}, claimed "
                     f"{_comparison(row)} -> {row['verdict']}")
        lines.append(f"      {row['claim']}")
    lines += ["", "Test accuracy (%):"]
    width = max((len(row["experiment"]) for row in accuracies), default=0)
    lines += [f"  {row['experiment']:<{width}}  {float(row['test_accuracy_mean']):6.2f}  "
              f"({row['dataset']})" for row in accuracies]
    lines += ["", f"Figure: {workspace / ACCURACY_QUALITY}", f"Paper:  {workspace / PAPER}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="EXPERIMENT", default=EXPERIMENTS,
                        help="run these experiments instead of the stand-in's list (a quick "
                             "check; it must hold what their claims compare with)")
    parser.add_argument("--extra-config", type=Path, metavar="FILE",
                        help="another config file applied after standin.yaml (e.g. fewer epochs "
                             "for a quick check of this script)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--workspace", type=Path, default=WORKSPACE)
    args = parser.parse_args(argv)
    for needed in (CIFAR_JPEG, MNIST_RAW):
        if not needed.exists():
            sys.exit(f"standin: {needed} not found; the stand-in needs ../shared/data "
                     f"(MNIST/raw/ and cifar10-jpeg.zip) beside the repository")
    if args.extra_config is not None and not args.extra_config.is_file():
        sys.exit(f"standin: --extra-config {args.extra_config} not found")
    workspace = args.workspace.resolve()
    sync_code(workspace)
    (workspace / "standin.yaml").write_text(
        "# Written by benchmarks/standin.py: config.yaml's overrides for the stand-in run.\n"
        + yaml.safe_dump(overrides(list(args.only)), sort_keys=False))
    configs = ["config.yaml", "standin.yaml"]
    if args.extra_config is not None:
        configs.append(str(args.extra_config.resolve()))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = [sys.executable, "-m", "snakemake", "--cores", str(args.cores),
               CLAIMS, ACCURACY_QUALITY, PAPER, "--configfile", *configs]
    print(f"standin: in {workspace}: {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    if subprocess.run(command, cwd=workspace, env=env).returncode != 0:
        sys.exit(f"standin: snakemake failed; see its output above and {workspace / 'logs'}")
    print(f"standin: workflow done in {time.perf_counter() - start:.0f} s\n")
    print(report(workspace, list(args.only)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
