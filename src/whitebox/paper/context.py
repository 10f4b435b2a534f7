"""The numbers and paths the paper templates show, gathered from result files.

``build_context`` reads every per-seed ``metrics.json``, groups the seeds of each
experiment (in the order experiments first appear), and summarises them: mean and
sample standard deviation of the test accuracy, the difference to the number the
research log reports, wall times and provenance. Figure paths are made relative to the
paper directory because LaTeX runs there. The result is plain data (dicts, lists,
numbers, strings), so it can also be dumped as JSON for inspection.

Incremental Neural Hashing (INH) runs add to this: the slot count and compression
(training images / slots) their metrics carry, and the extra evaluations that sit next
to each ``metrics.json`` (``slot_update``, ``ood``, ``attacks``, ``class_incremental``;
see :mod:`whitebox.paper.evaluations`), summarised over seeds as mean and sample std.
From those, ``build_context`` also assembles what the INH tables compare across
experiments: the PGD table (one row per eps, one column group per attacked model), the
comparison with the numbers the log reports (the "anchor"), and every case where a slot
update lowered accuracy, so the text can say so.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from whitebox.config import PRESENTATION_DEFAULTS
from whitebox.figures.kinds import FIGURE_KINDS, noise_gradient_rows
from whitebox.paper.claims import (
    METRIC_NAMES,
    claim_margins,
    claims_table,
    load_gradient_metrics,
    summarize_gradient_metrics,
)
from whitebox.paper.errors import PaperInputError
from whitebox.paper.evaluations import (
    SLOT_UPDATE_FIGURE_PROTOCOLS,
    Stat,
    run_evaluations,
    stat,
    summarize_evaluations,
)
from whitebox.paper.findings import DEFAULT_MARGIN, evaluate_finding, family_tables
from whitebox.paper.latex import macro_name
from whitebox.paper.verdicts import FIRST_MODELS, claims_summary, section_of

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
SPEC_KEYS = ("name", "dataset", "base_dataset", "source", "model", "training")
NUMBER_KEYS = ("test_accuracy", "wall_time_s", "n_parameters", "epochs", "seed")
INH_NUMBER_KEYS = ("slots", "compression")  # only in the metrics of models with INH slots
INFO_FIGURE_KINDS = ("unit_grid", "kernel_views", "prototype_parts")  # captions use figure_info
# Kinds figures.tex.j2 has a block of its own for; any other kind gets a generic figure whose
# caption is its declaration's (whitebox.figures.kinds).
TEMPLATED_FIGURE_KINDS = ("gradients", "filters", "slots", "slot_update", "noise_gradients",
                          "unit_grid", "kernel_views", "prototype_parts")
# Experiments on this base dataset have their own paper section (\cubfigures), not \mainfigures.
CUB_DATASET = "cub200"

# Characters that \includegraphics cannot take in a file name.
_UNSAFE_PATH_CHARS = set("%#{}\\$^~&") | {" ", "\t", "\n"}


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
    for key in NUMBER_KEYS + tuple(k for k in INH_NUMBER_KEYS if k in metrics):
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


FIGURE_INFO_KEY = "whitebox"  # the PNG text chunk of whitebox.figures.grids.save_figure


def figure_info(png: Path) -> dict[str, Any]:
    """What a figure records about itself (its PNG's ``whitebox`` text chunk), or ``{}``.

    Renderers store e.g. the kernels a kernel_views figure picked, so that the caption can
    name them; a PNG without the chunk (made elsewhere) just gets a more general caption.
    """
    from PIL import Image

    try:
        with Image.open(png) as image:
            text = getattr(image, "text", {}).get(FIGURE_INFO_KEY)
    except OSError as error:
        raise PaperInputError(f"figure {png} is not a readable image ({error}); rerender it") from None
    if text is None:
        return {}
    try:
        info = json.loads(text)
    except json.JSONDecodeError:
        raise PaperInputError(f"figure {png} carries corrupt whitebox metadata; rerender it") from None
    return info if isinstance(info, dict) else {}


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


def _optional_stat(runs: list[dict], key: str) -> Stat | None:
    """Mean ± std of ``key`` over the runs that carry it; None when none does."""
    values = [float(m[key]) for m in runs if key in m]
    return stat(values) if values else None


def _reported_number(shown: dict, key: str) -> float | None:
    value = shown["reported"].get(key)
    return None if value is None else float(value)


def summarize_experiment(
    name: str, group: list[tuple[Path, dict]], figures: dict[str, Path], paper_dir: Path,
    shown: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the templates show about one experiment, from its seeds' metrics, the
    evaluation files next to them and ``shown``, its presentation in config.yaml (title,
    family, finding, reported numbers, figure options; see PRESENTATION_DEFAULTS)."""
    group = sorted(group, key=lambda item: item[1]["seed"])
    runs = [metrics for _, metrics in group]
    first_path, first = group[0]
    spec = first["spec"]
    shown = {**PRESENTATION_DEFAULTS, **(shown or {})}
    hashes = _unique(m["config_hash"] for m in runs)
    if len(hashes) > 1:
        raise PaperInputError(
            f"experiment '{name}': seeds were trained with different configs "
            f"({', '.join(hashes)}); retrain the stale seeds"
        )
    accuracies = [float(m["test_accuracy"]) for m in runs]
    mean, std = _mean_std(accuracies)
    reported = shown["reported"].get("test_accuracy")
    unknown_kinds = sorted(set(figures) - set(FIGURE_KINDS))
    if unknown_kinds:
        raise PaperInputError(
            f"experiment '{name}': unknown figure kind(s) {', '.join(unknown_kinds)}; "
            f"known: {', '.join(FIGURE_KINDS)}"
        )
    evaluations = summarize_evaluations(
        name, [(m["seed"], run_evaluations(path, m)) for path, m in group])
    gradient_metrics = summarize_gradient_metrics(
        name, [load_gradient_metrics(path, m) for path, m in group])
    slots = _optional_stat(runs, "slots")
    parameters = [int(m["n_parameters"]) for m in runs]
    figure_spec = dict(shown["figures"])
    if "slot_update" in figure_spec:
        figure_spec["slot_update"] = {"protocols": SLOT_UPDATE_FIGURE_PROTOCOLS,
                                      **(figure_spec["slot_update"] or {})}
    if "noise_gradients" in figure_spec:
        figure_spec["noise_gradients"] = {
            **figure_spec["noise_gradients"],
            "rows": [{"layer": layer, "units": units}
                     for layer, units in noise_gradient_rows(figure_spec["noise_gradients"])]}
    return {
        "name": name,
        "macro": macro_name(name),
        "title": shown["title"] or name,
        "log_entry": shown["log_entry"],
        "family": shown["family"],
        "family_title": shown["family_title"] or shown["family"] or "",
        "finding": shown["finding"],
        # GumbelConv2d layers: their parameter count next to the Conv2d each replaces.
        "gumbel_layers": first.get("gumbel_layers", {}),
        "dataset": first["dataset"],
        "base_dataset": spec["base_dataset"],
        "source": spec["source"],
        "synthetic": spec["source"]["source"] == "synthetic",
        "data_note": shown["data_note"],  # config's note on a stand-in for the dataset
        "is_cub": CUB_DATASET in (first["dataset"], spec["base_dataset"]),
        "model": spec["model"],
        "model_args": spec.get("model_args", {}),
        "training": spec["training"],
        "figure_spec": figure_spec,
        "classes": list(first["classes"]),
        "per_class": _per_class_means(runs, first_path),
        # INH models grow: their size differs between seeds, so the mean is shown.
        "n_parameters": round(statistics.fmean(parameters)),
        "n_parameters_vary": len(set(parameters)) > 1,
        "epochs": int(first["epochs"]),
        "train_images": int(first["train_images"]),
        "test_images": int(first["test_images"]),
        "image_shape": first.get("image_shape"),  # (C, H, W); absent from older metrics files
        "seeds": [m["seed"] for m in runs],
        "n": len(runs),
        "mean": mean,
        "std": std,
        "reported": None if reported is None else float(reported),
        "difference": None if reported is None else mean - float(reported),
        "accuracy": stat(accuracies),
        "is_inh": slots is not None,
        "slots": slots,
        "compression": _optional_stat(runs, "compression"),
        "reported_slots": _reported_number(shown, "slots"),
        "reported_compression": _reported_number(shown, "compression"),
        "evaluations": evaluations,
        "gradient_metrics": gradient_metrics,
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
            for kind, png in sorted(figures.items(), key=lambda item: list(FIGURE_KINDS).index(item[0]))
        },
        # Kinds without a block of their own in figures.tex.j2: their declared caption.
        "generic_figures": [{"kind": kind, "path": relative_figure_path(png, paper_dir),
                             "caption": FIGURE_KINDS[kind].caption}
                            for kind, png in figures.items() if kind not in TEMPLATED_FIGURE_KINDS],
        # What the unit_grid, kernel_views and prototype_parts figures say they show.
        "figure_info": {kind: figure_info(png) for kind, png in figures.items()
                        if kind in INFO_FIGURE_KINDS},
    }


def _resolve_unit_grid_compare(experiment: dict[str, Any], by_name: dict[str, dict]) -> None:
    """Give a unit_grid figure's ``compare`` experiment its title and first seed for the caption."""
    grid = experiment["figure_spec"].get("unit_grid")
    if not grid or "unit_grid" not in experiment["figures"]:
        return
    grid = experiment["figure_spec"]["unit_grid"] = {"compare": None, **grid}
    grid.setdefault("compare_layer", grid.get("layer"))
    compare = grid["compare"]
    if compare is None:
        return
    if compare not in by_name:
        raise PaperInputError(
            f"experiment '{experiment['name']}': its unit_grid figure compares with '{compare}', "
            f"whose metrics were not given; pass them too (known: {', '.join(by_name)})"
        )
    grid["compare_title"] = by_name[compare]["title"]
    grid["compare_seed"] = by_name[compare]["seeds"][0]


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
                "crop": source.get("crop"),  # cub; None: the library's default (bbox)
                "note": experiment["data_note"],
                "image_shape": experiment["image_shape"],
                "experiments": [],
            },
        )
        note["experiments"].append(experiment["title"])
    return list(notes.values())


def with_evaluation(experiments: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The experiments that have at least one seed's ``kind`` evaluation."""
    return [e for e in experiments if kind in e["evaluations"]]


def pgd_table(experiments: list[dict[str, Any]]) -> dict[str, Any]:
    """The PGD comparison: one column group per attacked experiment, one row per eps.

    The first row (eps None) is the clean accuracy. A cell is None where an experiment
    was not attacked at that eps; ``flagged`` and ``accuracy_with_abstention`` are None
    for models without an unmatched flag (the baselines).
    """
    attacked = with_evaluation(experiments, "attacks")
    eps_values = sorted({a["eps"] for e in attacked for a in e["evaluations"]["attacks"]["attacks"]})

    def cell(scores: dict[str, Any] | None) -> dict[str, Any] | None:
        if scores is None:
            return None
        return {key: scores.get(key) for key in ("accuracy", "flagged",
                                                 "accuracy_with_abstention")}

    rows = [{"eps": None, "cells": [cell(e["evaluations"]["attacks"]["clean"]) for e in attacked]}]
    for eps in eps_values:
        rows.append({"eps": eps, "cells": [
            cell(next((a for a in e["evaluations"]["attacks"]["attacks"] if a["eps"] == eps),
                      None))
            for e in attacked]})
    columns = [{"name": e["name"], "title": e["title"], "macro": e["macro"],
                "flagging": e["evaluations"]["attacks"]["flagging"],
                "n_images": e["evaluations"]["attacks"]["n_images"],
                "steps": e["evaluations"]["attacks"]["steps"],
                "n_seeds": e["evaluations"]["attacks"]["n_seeds"]} for e in attacked]
    return {"experiments": columns, "rows": rows, "eps": eps_values}


def anchor_comparisons(experiments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """INH experiments for which the log reports a slot count or an accuracy, compared."""
    comparisons = []
    for e in experiments:
        if not e["is_inh"] or (e["reported_slots"] is None and e["reported"] is None):
            continue
        slots, reported_slots = e["slots"]["mean"], e["reported_slots"]
        comparisons.append({
            "name": e["name"],
            "title": e["title"],
            "dataset": e["dataset"],
            "n": e["n"],
            "n_parameters": e["n_parameters"],
            "accuracy": e["accuracy"],
            "reported": e["reported"],
            "difference": e["difference"],
            "slots": e["slots"],
            "reported_slots": reported_slots,
            "slots_difference": None if reported_slots is None else slots - reported_slots,
            "slots_ratio": None if reported_slots is None else slots / reported_slots,
            "within_slots": None if reported_slots is None else slots <= reported_slots,
            "accuracy_reached": None if e["reported"] is None else e["mean"] >= e["reported"],
        })
    return comparisons


def slot_update_drops(experiments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every (experiment, protocol, half) whose mean accuracy is lower after the update."""
    drops = []
    for e in with_evaluation(experiments, "slot_update"):
        for protocol in e["evaluations"]["slot_update"]["protocols"]:
            for key, half in (("update_half", "update half"), ("held_out", "held-out half")):
                before = protocol[key]["before"]["accuracy"]
                after = protocol[key]["after"]["accuracy"]
                if before["mean"] is not None and after["mean"] is not None \
                        and after["mean"] < before["mean"]:
                    drops.append({"experiment": e["title"], "name": e["name"],
                                  "protocol": protocol["name"], "half": half,
                                  "before": before, "after": after,
                                  "change": after["mean"] - before["mean"]})
    return drops


def comparison_context(figures: dict[str, Path], paper_dir: Path) -> dict[str, Any]:
    """The comparison figures for the templates: ``accuracy_quality`` ({path, target_accuracy}
    or None; the target as the figure recorded it) and ``gradient_comparison`` ([{dataset,
    path}] in the order given)."""
    unknown = [k for k in figures if k != "accuracy_quality" and not k.startswith("gradient_comparison:")]
    if unknown:
        raise PaperInputError(f"unknown comparison figure(s) {', '.join(unknown)}; valid: "
                              "accuracy_quality, gradient_comparison:<dataset>")
    frontier = figures.get("accuracy_quality")
    return {
        "accuracy_quality": frontier and {
            "path": relative_figure_path(frontier, paper_dir),
            "target_accuracy": figure_info(frontier).get("target_accuracy")},
        "gradient_comparison": [{"dataset": key.partition(":")[2],
                                 "path": relative_figure_path(png, paper_dir)}
                                for key, png in figures.items() if key != "accuracy_quality"],
    }


def cifar_classes(experiments: list[dict[str, Any]]) -> dict[str, Any]:
    """How many classes the stages on CIFAR-10 images saw: ``stages`` (their number), ``full``
    (titles of those with all ten) and ``subset_sizes`` (the other class counts, ascending)."""
    cifar = [e for e in experiments if e["base_dataset"] == "cifar10"]
    sizes = sorted({len(e["classes"]) for e in cifar})
    return {"stages": len(cifar), "full": [e["title"] for e in cifar if len(e["classes"]) >= 10],
            "subset_sizes": [n for n in sizes if n < 10]}


def control_experiments(experiments: list[dict[str, Any]]) -> list[str]:
    """The controls: experiments trained on shuffled labels."""
    return [e["name"] for e in experiments if e["training"].get("shuffle_labels")]


def version_groups(experiments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Experiments that recorded the same library versions, one group per set of versions
    (``{titles, versions}``), in order of first appearance."""
    groups: dict[tuple, dict[str, Any]] = {}
    for e in experiments:
        key = tuple(sorted(e["versions"].items()))
        groups.setdefault(key, {"titles": [], "versions": e["versions"]})["titles"].append(e["title"])
    return list(groups.values())


def build_context(
    metrics_paths: list[Path], figures: dict[str, dict[str, Path]], paper_dir: Path,
    claims: dict[str, Any] | None = None, presentation: dict[str, dict] | None = None,
    comparison_figures: dict[str, Path] | None = None,
) -> dict[str, Any]:
    """The template context: one summary per experiment plus global provenance and flags.

    ``presentation`` is config.yaml's view of each experiment, ``{name: {title, family,
    family_title, finding, reported, figures, evaluations, log_entry}}``
    (whitebox.config.presentation): the paper reads it from config, not from the results, so
    retitling an experiment never asks for retraining. Experiments it leaves out are shown
    under their names.

    ``figures`` maps experiment name → {kind → png path}, kinds from FIGURE_KINDS; the
    evaluation and gradient-metrics files are found next to the metrics files; ``claims`` is
    config.yaml's claims block (items, margins) for the claims table. ``smoke`` is
    true when any experiment trained on synthetic data; the templates then label every
    page and the results table so the PDF cannot pass for real results. ``data_notes`` are
    the notes config gives the stand-in datasets the experiments trained on (e.g. CIFAR-10
    re-encoded as JPEG); every page carries them too.
    ``comparison_figures`` maps ``accuracy_quality`` and ``gradient_comparison:<dataset>`` to
    the figures that set all stages side by side.
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
        summarize_experiment(name, group, figures.get(name, {}), Path(paper_dir),
                             (presentation or {}).get(name))
        for name, group in groups.items()
    ]
    macros = [e["macro"] for e in experiments]
    clashes = _unique(m for m in macros if macros.count(m) > 1)
    if clashes:
        raise PaperInputError(
            f"experiment names map to the same LaTeX macro ({', '.join(clashes)}); rename one"
        )
    by_name = {e["name"]: e for e in experiments}
    similar_margin = (claims or {}).get("margins", {}).get("test_accuracy", DEFAULT_MARGIN["similar"])
    for e in experiments:
        e["finding_result"] = evaluate_finding(e, by_name, similar_margin)
        _resolve_unit_grid_compare(e, by_name)
    claim_rows = claims_table(experiments, claims)
    runs = [run for e in experiments for run in e["runs"]]
    inh = [e for e in experiments if e["is_inh"]]
    return {
        "experiments": experiments,
        # The first CIFAR-10 models go into the overview table; families and INH have their own.
        "overview_experiments": [e for e in experiments if section_of(e) == FIRST_MODELS],
        "families": family_tables(experiments),
        "figure_experiments": [e for e in experiments if e["figures"]],
        # Figures of the earlier stages (the Results section), of INH models (its section);
        # a family's figures go with its table (``families``); every figure of a CUB-200
        # experiment goes to the CUB section (\cubfigures), whatever its family.
        "main_figure_experiments": [e for e in experiments if e["figures"] and not e["is_inh"]
                                    and not e["family"] and not e["is_cub"]],
        "inh_figure_experiments": [e for e in inh if e["figures"] and not e["is_cub"]],
        "cub_figure_experiments": [e for e in experiments if e["figures"] and e["is_cub"]],
        # The first prototype_parts figure carries the full caption; the others refer to it.
        "prototype_caption_owner": next((e["macro"] for e in experiments
                                         if "prototype_parts" in e["figures"]), None),
        "inh_experiments": inh,
        # INH models and the baselines evaluated beside them (e.g. the MLP under attack).
        "inh_table_experiments": [e for e in experiments if e["is_inh"] or e["evaluations"]],
        "slot_update_experiments": with_evaluation(experiments, "slot_update"),
        # The slot-update table's columns: each experiment's protocols, in order.
        "slot_update_columns": [p for e in with_evaluation(experiments, "slot_update")
                                for p in e["evaluations"]["slot_update"]["protocols"]],
        "ood_experiments": with_evaluation(experiments, "ood"),
        "class_incremental_experiments": with_evaluation(experiments, "class_incremental"),
        "pgd": pgd_table(experiments),
        # Gradient metrics (mean ± std over seeds) of the experiments that have them.
        "metric_names": METRIC_NAMES,
        "gradient_metric_experiments": [e for e in experiments if e["gradient_metrics"]],
        "claims": claim_rows,
        "summary": claims_summary(experiments, claim_rows, presentation, claims),
        "claim_margins": claim_margins(claims),
        "cifar_classes": cifar_classes(experiments),
        "comparison": comparison_context(comparison_figures or {}, Path(paper_dir)),
        "control_experiments": control_experiments(experiments),
        "anchors": anchor_comparisons(experiments),
        "slot_update_drops": slot_update_drops(experiments),
        "smoke": any(e["synthetic"] for e in experiments),
        "synthetic_experiments": [e["title"] for e in experiments if e["synthetic"]],
        # Notes of stand-in datasets (config's datasets: note): every page carries them.
        "data_notes": _unique(e["data_note"] for e in experiments if e["data_note"]),
        "datasets": dataset_notes(experiments),
        "n_runs": len(runs),
        "devices": _unique(run["device"] for run in runs),
        "device_names": _unique(name for e in experiments for name in e["device_names"]),
        "git_commits": _unique(run["git_commit"] for run in runs),
        "version_names": _unique(name for e in experiments for name in e["versions"]),
        "version_groups": version_groups(experiments),
        "total_wall_time_s": sum(run["wall_time_s"] for run in runs),
    }
