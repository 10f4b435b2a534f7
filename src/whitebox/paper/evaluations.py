"""The extra evaluations of a run (``<run dir>/<kind>.json``), read and summarised over seeds.

Each evaluation JSON sits next to its run's ``metrics.json`` and holds ``evaluation``,
``experiment``, ``seed``, ``config_hash``, ``git_commit`` and the evaluation's
``result`` (see ``whitebox.evaluation``). A run may lack some or all of them: only the
files that exist are read, and an experiment's summary of one kind covers the seeds
that have it.

Summaries are built in two steps. :func:`aggregate` walks the seeds' results in
parallel and turns every number into a :data:`Stat` (mean, sample std, n, the
per-seed values); strings and flags that agree are kept, lists of scalars that differ
between seeds (e.g. slot-update curves of different lengths) are dropped. The
``summarize_*`` functions then give each kind the shape the templates read, with key
names that do not clash with ``dict`` methods in jinja2 (``update`` becomes
``update_half``).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from whitebox.evaluation.kinds import EVALUATION_KINDS
from whitebox.figures.kinds import FIGURE_KINDS
from whitebox.paper.errors import PaperInputError

SLOT_UPDATE_PROTOCOLS = tuple(FIGURE_KINDS["slot_update"].options["protocols"]["items"]["enum"])
# The slot_update figure plots this protocol unless its options say otherwise.
SLOT_UPDATE_FIGURE_PROTOCOLS = FIGURE_KINDS["slot_update"].options["protocols"]["default"]
EVALUATION_KEYS = ("evaluation", "experiment", "seed", "config_hash", "result")

# Readable names of the OOD sets ``whitebox evaluate --kind ood`` writes.
OOD_SET_LABELS = {
    "gaussian_noise": "Gaussian noise",
    "uniform_noise": "Uniform noise",
    "cifar10_grey_crops": "CIFAR-10 greyscale crops",
}


class EvaluationInputError(PaperInputError):
    """An evaluation file is malformed or does not belong to its run (one line)."""


Stat = dict[str, Any]  # {"mean": float | None, "std": float | None, "n": int, "per_seed": [...]}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def stat(values: list[Any]) -> Stat:
    """Mean and sample std (0 for one value) of the numbers among ``values`` (None skipped)."""
    numbers = [float(v) for v in values if v is not None]
    if not numbers:
        return {"mean": None, "std": None, "n": 0, "per_seed": list(values)}
    std = statistics.stdev(numbers) if len(numbers) > 1 else 0.0
    return {"mean": statistics.fmean(numbers), "std": std, "n": len(numbers),
            "per_seed": list(values)}


def aggregate(values: list[Any], where: str = "result") -> Any:
    """The seeds' values of one field, summarised (see the module docstring).

    Numbers (None where a seed has no value) → :data:`Stat`; objects → an object of
    the aggregates of each key (over the seeds that have it); lists of objects of equal
    length → element-wise; lists of scalars, strings and flags → the value when all
    seeds agree, else None. Mixed kinds are an error naming ``where``.
    """
    present = [v for v in values if v is not None]
    if not present:
        return None
    if all(_is_number(v) for v in present):
        return stat(values)
    if all(isinstance(v, dict) for v in present):
        keys: list[str] = []
        for value in present:
            keys.extend(k for k in value if k not in keys)
        return {key: aggregate([v[key] for v in present if key in v], f"{where}.{key}")
                for key in keys}
    if all(isinstance(v, list) for v in present):
        if all(isinstance(item, dict) for v in present for item in v):
            lengths = {len(v) for v in present}
            if len(lengths) > 1:
                raise EvaluationInputError(
                    f"'{where}' has {' vs '.join(str(n) for n in sorted(lengths))} entries in "
                    "different seeds; rerun the evaluations with the current code")
            return [aggregate([v[i] for v in present], f"{where}[{i}]")
                    for i in range(lengths.pop())]
        return present[0] if all(v == present[0] for v in present) else None
    if all(isinstance(v, str | bool) for v in present):
        return present[0] if all(v == present[0] for v in present) else None
    kinds = sorted({type(v).__name__ for v in present})
    raise EvaluationInputError(f"'{where}' holds different kinds of value in different seeds "
                               f"({', '.join(kinds)}); rerun the evaluations")


def load_evaluation(path: Path, kind: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """The ``result`` of one evaluation file, after checking it belongs to ``metrics``' run."""
    try:
        record = json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise EvaluationInputError(
            f"evaluation file {path} is not valid JSON (line {error.lineno}); delete it and "
            "rerun the evaluate rule") from None
    if not isinstance(record, dict):
        raise EvaluationInputError(f"evaluation file {path} does not hold a JSON object; "
                                   "rerun the evaluate rule")
    for key in EVALUATION_KEYS:
        if key not in record:
            raise EvaluationInputError(f"evaluation file {path} lacks key '{key}'; rerun the "
                                       "evaluate rule with the current code")
    expected = {"evaluation": kind, "experiment": metrics["experiment"], "seed": metrics["seed"]}
    for key, value in expected.items():
        if record[key] != value:
            raise EvaluationInputError(f"evaluation file {path} has {key} {record[key]!r}, "
                                       f"expected {value!r}; it is misplaced")
    if record["config_hash"] != metrics["config_hash"]:
        raise EvaluationInputError(
            f"evaluation file {path} was computed for config {record['config_hash']}, the "
            f"model for {metrics['config_hash']}; it is stale, rerun the evaluate rule")
    if not isinstance(record["result"], dict):
        raise EvaluationInputError(f"evaluation file {path}: 'result' is not an object")
    return record["result"]


def run_evaluations(metrics_path: Path, metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{kind: result} of the evaluation files next to ``metrics_path`` (absent ones left out)."""
    run_dir = Path(metrics_path).parent
    return {kind: load_evaluation(run_dir / f"{kind}.json", kind, metrics)
            for kind in EVALUATION_KINDS if (run_dir / f"{kind}.json").is_file()}


def _require(summary: Any, keys: tuple[str, ...], kind: str, experiment: str) -> None:
    missing = [key for key in keys if not isinstance(summary, dict) or summary.get(key) is None]
    if missing:
        raise EvaluationInputError(
            f"experiment '{experiment}': {kind}.json lacks {', '.join(missing)}; rerun the "
            "evaluate rule with the current code")


def summarize_slot_update(summary: dict[str, Any], experiment: str) -> dict[str, Any]:
    """One entry per protocol, in :data:`SLOT_UPDATE_PROTOCOLS` order (then any others)."""
    names = [p for p in SLOT_UPDATE_PROTOCOLS if p in summary]
    names += [p for p in summary if p not in names]
    protocols = []
    for name in names:
        protocol = summary[name]
        _require(protocol, ("update", "held_out", "new_slots", "labels_revealed"),
                 "slot_update", experiment)
        protocols.append({
            "name": name,
            "n_update": protocol.get("n_update"),
            "n_held_out": protocol.get("n_held_out"),
            "slots_before": protocol.get("slots_before"),
            "slots_after": protocol.get("slots_after"),
            "new_slots": protocol["new_slots"],
            "labels_revealed": protocol["labels_revealed"],
            "update_half": protocol["update"],
            "held_out": protocol["held_out"],
            "revealed": protocol.get("revealed"),
            "retained": protocol.get("retained"),
        })
    return {"protocols": protocols}


def summarize_ood(summary: dict[str, Any], experiment: str) -> dict[str, Any]:
    _require(summary, ("in_distribution", "sets"), "ood", experiment)
    sets = [{"key": key, "label": OOD_SET_LABELS.get(key, key.replace("_", " ")), **values}
            for key, values in summary["sets"].items()]
    for entry in sets:
        _require(entry, ("unmatched", "auroc"), "ood", experiment)
    return {"in_distribution": summary["in_distribution"], "sets": sets}


def summarize_class_incremental(summary: dict[str, Any], experiment: str) -> dict[str, Any]:
    _require(summary, ("seen", "unseen", "auroc"), "class_incremental", experiment)
    return {
        "seen": summary["seen"],
        "unseen": summary["unseen"],
        "auroc": summary["auroc"],
        "seen_accuracy": summary.get("seen_accuracy"),
        "seen_classes": summary.get("seen_classes") or [],
        "unseen_classes": summary.get("unseen_classes") or [],
    }


def summarize_attacks(summary: dict[str, Any], experiment: str) -> dict[str, Any]:
    _require(summary, ("clean", "attacks"), "attacks", experiment)
    attacks = []
    for attack in summary["attacks"]:
        eps = attack.get("eps")
        if not eps or eps["n"] == 0 or eps["std"] != 0.0:
            raise EvaluationInputError(f"experiment '{experiment}': attacks.json seeds disagree "
                                       "on the eps of an attack; rerun the evaluations")
        attacks.append({**attack, "eps": eps["mean"]})
    n_images = summary.get("n_images") or summary.get("n")
    return {
        "flagging": bool(summary.get("flagging")),
        "steps": None if summary.get("steps") is None else summary["steps"]["mean"],
        "n_images": None if n_images is None else n_images["mean"],
        "clean": summary["clean"],
        "attacks": attacks,
    }


def summarize_label_errors(summary: dict[str, Any], experiment: str) -> dict[str, Any]:
    _require(summary, ("n_flipped", "flagged", "recall", "chance_precision"), "label_errors",
             experiment)
    return summary


def percent(share: Stat | None) -> Stat | None:
    """A :data:`Stat` of shares in [0, 1] as one of percentages (None stays None)."""
    if share is None or share["mean"] is None:
        return share
    return {"mean": 100.0 * share["mean"], "std": 100.0 * share["std"], "n": share["n"],
            "per_seed": [None if v is None else 100.0 * v for v in share["per_seed"]]}


def summarize_view_usage(summary: dict[str, Any], experiment: str) -> dict[str, Any]:
    """Per view layer: each view's share of the maxima, the identity view's and the ties' (in
    percent), and for learned perspective warps their displacement from the initial values."""
    _require(summary, ("n_images", "layers"), "view_usage", experiment)
    layers = []
    for layer in summary["layers"]:
        _require(layer, ("layer", "layer_type", "views", "tie_share"), "view_usage", experiment)
        moved = layer.get("perspective")
        layers.append({
            "layer": layer["layer"],
            "layer_type": layer["layer_type"],
            "views": [{"label": view["label"], "identity": view["identity"],
                       "percent": percent(view["share"])} for view in layer["views"]],
            "identity_percent": percent(layer.get("identity_share")),
            "tie_percent": percent(layer["tie_share"]),
            "perspective": None if moved is None else {
                "spread": moved["spread"]["mean"],
                "mean_displacement": moved["mean_displacement"],
                "max_displacement": moved["max_displacement"]},
        })
    return {"n_images": summary["n_images"]["mean"], "layers": layers}


def summarize_unit_activity(summary: dict[str, Any], experiment: str) -> dict[str, Any]:
    """Per layer of ReLU-like units its dead units (count and share); the representation's
    mean absolute correlation and effective rank (None without a SoftMaxPool)."""
    _require(summary, ("n_images", "layers"), "unit_activity", experiment)
    for layer in summary["layers"]:
        _require(layer, ("layer", "n_units", "dead", "dead_share"), "unit_activity", experiment)
    return {"n_images": summary["n_images"]["mean"], "layers": summary["layers"],
            "representation": summary.get("representation")}


def summarize_hidden_noise_stability(summary: dict[str, Any], experiment: str) -> dict[str, Any]:
    """Per convolution the mean noise stability of its units' centre gradients."""
    _require(summary, ("n_noise", "layers"), "hidden_noise_stability", experiment)
    for layer in summary["layers"]:
        _require(layer, ("layer", "n_units", "noise_stability"), "hidden_noise_stability",
                 experiment)
    return {"n_noise": summary["n_noise"]["mean"], "layers": summary["layers"]}


def summarize_train_fit(summary: dict[str, Any], experiment: str) -> dict[str, Any]:
    """Eval-mode train and test accuracy (%) and their gap (points), over seeds."""
    _require(summary, ("train_accuracy", "test_accuracy", "gap"), "train_fit", experiment)
    return summary


SUMMARIZERS = {
    "slot_update": summarize_slot_update,
    "ood": summarize_ood,
    "class_incremental": summarize_class_incremental,
    "attacks": summarize_attacks,
    "label_errors": summarize_label_errors,
    "view_usage": summarize_view_usage,
    "unit_activity": summarize_unit_activity,
    "hidden_noise_stability": summarize_hidden_noise_stability,
    "train_fit": summarize_train_fit,
}


def summarize_evaluations(experiment: str, seeds_results: list[tuple[int, dict[str, dict]]]
                          ) -> dict[str, dict[str, Any]]:
    """{kind: summary} over the seeds that have each kind; ``seeds``/``n_seeds`` per kind.

    ``seeds_results`` is ``[(seed, {kind: result})]`` in seed order.
    """
    summaries: dict[str, dict[str, Any]] = {}
    for kind in EVALUATION_KINDS:
        present = [(seed, results[kind]) for seed, results in seeds_results if kind in results]
        if not present:
            continue
        merged = aggregate([result for _, result in present], f"{experiment} {kind}")
        summary = SUMMARIZERS[kind](merged, experiment)
        summary["seeds"] = [seed for seed, _ in present]
        summary["n_seeds"] = len(present)
        summaries[kind] = summary
    return summaries
