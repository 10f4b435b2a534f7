"""The numbers and paths the paper templates show, gathered from result files.

``build_context`` reads every per-seed ``metrics.json``, groups the seeds of each
experiment (in the order experiments first appear), and summarises them: mean and
sample standard deviation of the test accuracy, the difference to the number the
research log reports, wall times and provenance. Figure paths are made relative to the
paper directory because LaTeX runs there. The result is plain data (dicts, lists,
numbers, strings), so it can also be dumped as JSON for inspection.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from whitebox.paper.latex import macro_name

FIGURE_KINDS = ("gradients", "filters")

METRICS_KEYS = (
    "experiment",
    "dataset",
    "seed",
    "test_accuracy",
    "per_class_accuracy",
    "classes",
    "epochs",
    "train_images",
    "test_images",
    "n_parameters",
    "wall_time_s",
    "device",
    "device_name",
    "config_hash",
    "git_commit",
    "versions",
    "spec",
)
SPEC_KEYS = (
    "name",
    "dataset",
    "base_dataset",
    "source",
    "model",
    "training",
    "title",
    "log_entry",
    "reported",
    "figures",
)
NUMBER_KEYS = ("test_accuracy", "wall_time_s", "n_parameters", "epochs", "seed")

# Characters that \includegraphics cannot take in a file name.
_UNSAFE_PATH_CHARS = set("%#{}\\$^~&") | {" ", "\t", "\n"}


class PaperInputError(ValueError):
    """A result file the paper needs is missing or malformed; the message is one line."""


def load_metrics(path: Path) -> dict[str, Any]:
    """Read one ``metrics.json`` and check that every key the paper uses is there."""
    path = Path(path)
    try:
        metrics = json.loads(path.read_text())
    except FileNotFoundError:
        raise PaperInputError(
            f"metrics file not found: {path}; run the training rule that writes it"
        ) from None
    except json.JSONDecodeError as error:
        raise PaperInputError(
            f"metrics file {path} is not valid JSON (line {error.lineno}); delete it and retrain"
        ) from None
    if not isinstance(metrics, dict):
        raise PaperInputError(f"metrics file {path} does not hold a JSON object; retrain")
    _require_keys(metrics, METRICS_KEYS, path, prefix="")
    _require_keys(metrics["spec"], SPEC_KEYS, path, prefix="spec.")
    _require_keys(metrics["spec"]["source"], ("source",), path, prefix="spec.source.")
    for key in NUMBER_KEYS:
        value = metrics[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PaperInputError(f"metrics file {path}: '{key}' is not a number ({value!r})")
    return metrics


def _require_keys(mapping: Any, keys: Iterable[str], path: Path, prefix: str) -> None:
    if not isinstance(mapping, dict):
        raise PaperInputError(f"metrics file {path}: '{prefix.rstrip('.')}' is not an object")
    for key in keys:
        if key not in mapping:
            raise PaperInputError(
                f"metrics file {path} lacks key '{prefix}{key}'; retrain with the current code"
            )


def group_by_experiment(runs: Iterable[tuple[Path, dict]]) -> dict[str, list[tuple[Path, dict]]]:
    """Runs keyed by experiment name, in order of first appearance; one run per seed."""
    groups: dict[str, list[tuple[Path, dict]]] = {}
    for path, metrics in runs:
        group = groups.setdefault(metrics["experiment"], [])
        for other_path, other in group:
            if other["seed"] == metrics["seed"]:
                raise PaperInputError(
                    f"experiment '{metrics['experiment']}' seed {metrics['seed']} appears twice: "
                    f"{other_path} and {path}; pass each metrics file once"
                )
        group.append((path, metrics))
    return groups


def relative_figure_path(png: Path, paper_dir: Path) -> str:
    """``png`` relative to ``paper_dir`` in posix form, as ``\\includegraphics`` wants it."""
    png = Path(png)
    if not png.is_file():
        raise PaperInputError(f"figure not found: {png}; run the figures rule that renders it")
    relative = Path(os.path.relpath(png.resolve(), Path(paper_dir).resolve())).as_posix()
    unsafe = sorted(set(relative) & _UNSAFE_PATH_CHARS)
    if unsafe:
        raise PaperInputError(
            f"figure path {relative!r} contains {''.join(unsafe)!r}, which LaTeX cannot "
            "include; rename the results directory"
        )
    return relative


def _unique(values: Iterable[Any]) -> list[Any]:
    """Distinct values in order of first appearance."""
    seen: list[Any] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def _per_class_means(runs: list[dict], path: Path) -> list[dict[str, Any]]:
    classes = runs[0]["classes"]
    rows = []
    for name in classes:
        values = []
        for metrics in runs:
            if name not in metrics["per_class_accuracy"]:
                raise PaperInputError(
                    f"metrics file {path}: per_class_accuracy lacks class '{name}'; retrain"
                )
            values.append(float(metrics["per_class_accuracy"][name]))
        rows.append({"name": name, "mean": statistics.fmean(values)})
    return rows


def _versions(runs: list[dict]) -> dict[str, str]:
    """Each library's version(s) across the runs, joined when seeds disagree."""
    names = _unique(name for metrics in runs for name in metrics["versions"])
    return {
        name: ", ".join(
            _unique(str(m["versions"][name]) for m in runs if name in m["versions"])
        )
        for name in names
    }


def short_commit(commit: str) -> str:
    """A 40-digit commit shortened to 12 digits; any suffix (``-dirty``) is kept."""
    head, rest = commit[:40], commit[40:]
    if len(head) == 40 and all(c in "0123456789abcdef" for c in head.lower()):
        return head[:12] + rest
    return commit


def summarize_experiment(
    name: str, group: list[tuple[Path, dict]], figures: dict[str, Path], paper_dir: Path
) -> dict[str, Any]:
    """Everything the templates show about one experiment, from its seeds' metrics."""
    group = sorted(group, key=lambda item: item[1]["seed"])
    runs = [metrics for _, metrics in group]
    first_path, first = group[0]
    spec = first["spec"]
    hashes = _unique(m["config_hash"] for m in runs)
    if len(hashes) > 1:
        raise PaperInputError(
            f"experiment '{name}': seeds were trained with different configs "
            f"({', '.join(hashes)}); retrain the stale seeds"
        )
    accuracies = [float(m["test_accuracy"]) for m in runs]
    mean, std = _mean_std(accuracies)
    reported = spec["reported"].get("test_accuracy")
    unknown_kinds = sorted(set(figures) - set(FIGURE_KINDS))
    if unknown_kinds:
        raise PaperInputError(
            f"experiment '{name}': unknown figure kind(s) {', '.join(unknown_kinds)}; "
            f"known: {', '.join(FIGURE_KINDS)}"
        )
    return {
        "name": name,
        "macro": macro_name(name),
        "title": spec["title"] or name,
        "log_entry": spec["log_entry"],
        "dataset": first["dataset"],
        "base_dataset": spec["base_dataset"],
        "source": spec["source"],
        "synthetic": spec["source"]["source"] == "synthetic",
        "model": spec["model"],
        "model_args": spec.get("model_args", {}),
        "training": spec["training"],
        "figure_spec": spec["figures"],
        "classes": list(first["classes"]),
        "per_class": _per_class_means(runs, first_path),
        "n_parameters": int(first["n_parameters"]),
        "epochs": int(first["epochs"]),
        "train_images": int(first["train_images"]),
        "test_images": int(first["test_images"]),
        "seeds": [m["seed"] for m in runs],
        "n": len(runs),
        "mean": mean,
        "std": std,
        "reported": None if reported is None else float(reported),
        "difference": None if reported is None else mean - float(reported),
        "wall_time_mean": statistics.fmean(float(m["wall_time_s"]) for m in runs),
        "devices": _unique(m["device"] for m in runs),
        "device_names": _unique(m["device_name"] for m in runs),
        "config_hash": hashes[0],
        "git_commits": _unique(short_commit(str(m["git_commit"])) for m in runs),
        "versions": _versions(runs),
        "runs": [
            {
                "seed": m["seed"],
                "test_accuracy": float(m["test_accuracy"]),
                "wall_time_s": float(m["wall_time_s"]),
                "device": m["device"],
                "device_name": m["device_name"],
                "git_commit": short_commit(str(m["git_commit"])),
                "config_hash": m["config_hash"],
            }
            for m in runs
        ],
        "figures": {
            kind: relative_figure_path(png, paper_dir)
            for kind, png in sorted(figures.items(), key=lambda item: FIGURE_KINDS.index(item[0]))
        },
    }


def dataset_notes(experiments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per base dataset: where its images came from and which experiments use it."""
    notes: dict[str, dict[str, Any]] = {}
    for experiment in experiments:
        source = experiment["source"]
        note = notes.setdefault(
            experiment["base_dataset"],
            {
                "name": experiment["base_dataset"],
                "source": source["source"],
                "path": source.get("path"),
                "experiments": [],
            },
        )
        note["experiments"].append(experiment["title"])
    return list(notes.values())


def build_context(
    metrics_paths: list[Path], figures: dict[str, dict[str, Path]], paper_dir: Path
) -> dict[str, Any]:
    """The template context: one summary per experiment plus global provenance and flags.

    ``figures`` maps experiment name → {"gradients" | "filters" → png path}. ``smoke`` is
    true when any experiment trained on synthetic data; the templates then label every
    page and the results table so the PDF cannot pass for real results.
    """
    if not metrics_paths:
        raise PaperInputError("no metrics files given; the paper needs at least one experiment")
    groups = group_by_experiment((Path(p), load_metrics(Path(p))) for p in metrics_paths)
    unknown = [name for name in figures if name not in groups]
    if unknown:
        raise PaperInputError(
            f"figures given for experiment(s) without metrics: {', '.join(unknown)}; "
            f"known: {', '.join(groups)}"
        )
    experiments = [
        summarize_experiment(name, group, figures.get(name, {}), Path(paper_dir))
        for name, group in groups.items()
    ]
    macros = [e["macro"] for e in experiments]
    clashes = _unique(m for m in macros if macros.count(m) > 1)
    if clashes:
        raise PaperInputError(
            f"experiment names map to the same LaTeX macro ({', '.join(clashes)}); rename one"
        )
    runs = [run for e in experiments for run in e["runs"]]
    return {
        "experiments": experiments,
        "figure_experiments": [e for e in experiments if e["figures"]],
        "smoke": any(e["synthetic"] for e in experiments),
        "synthetic_experiments": [e["title"] for e in experiments if e["synthetic"]],
        "datasets": dataset_notes(experiments),
        "n_runs": len(runs),
        "devices": _unique(run["device"] for run in runs),
        "device_names": _unique(name for e in experiments for name in e["device_names"]),
        "git_commits": _unique(run["git_commit"] for run in runs),
        "version_names": _unique(name for e in experiments for name in e["versions"]),
        "total_wall_time_s": sum(run["wall_time_s"] for run in runs),
    }
