"""Gradient metrics over seeds, and the claims table: the log's testable claims with verdicts.

Every run has a ``gradient_metrics.json`` next to its ``metrics.json`` (written by
``whitebox gradient-metrics``, see :mod:`whitebox.explain.metrics`); its scalar results
are summarised over an experiment's seeds as mean and sample std (:data:`METRIC_NAMES`).

A claim (config.yaml ``claims.items``, every accuracy ``finding`` with a relation, and
"reaches the accuracy the log reports" for every stage with a reported accuracy) says
that an experiment's metric is lower than, higher than or similar to that of another
experiment (``than``) or a number (``value``), or at least (at most) a number the log
reports. Besides accuracy, time, the gradient metrics and an INH model's slot count
(``slots``), a claim may measure an extra evaluation of the model (:data:`EVALUATION_METRICS`).
The evidence is the difference d of the means (or d = mean - value) and its seed-to-seed
spread s (sqrt of the summed variances;
the std alone against a value); the verdict is :func:`whitebox.paper.findings.verdict`
with the claim's margin, by default ``claims.margins[metric]`` for "similar" and 0 for
"lower"/"higher". ``time_ratio`` compares training times: r = mean time / mean time of
``than``, d = r - value (value 1 unless given), s = r * sqrt(cv^2 + cv_than^2) with cv the
coefficient of variation of each experiment's wall times. ``generalisation_gap`` is the
``train_fit`` evaluation's train minus test accuracy of the final model in eval mode, in points.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from whitebox.paper.errors import PaperInputError
from whitebox.paper.evaluations import Stat, stat
from whitebox.paper.findings import DEFAULT_MARGIN, verdict

GRADIENT_METRICS_FILE = "gradient_metrics.json"
REPORTED_MARGIN = 2.0  # points: "reaches the accuracy the log reports" (claims.margins)
REPORTED_ACCURACY_CLAIM = "reaches the accuracy the log reports"
REPORTED_SLOTS_MARGIN = 0.1  # share of the slot count the log reports (claims.margins)
# The scalar results of gradient_metrics.json the paper shows, with their table labels.
METRIC_NAMES = {
    "alignment": "alignment",
    "noise_alignment": "alignment on noise",
    "class_specificity": "class specificity",
    "noise_stability": "noise stability",
    "sparsity": "sparsity",
    "high_frequency_share": "high-frequency share",
    "model_randomisation_mean": "rank corr., randomised layers",
    "label_randomisation": "rank corr., shuffled labels",
    "deletion_auc": "deletion AUC",
    "deletion_auc_random": "deletion AUC, random order",
    "insertion_auc": "insertion AUC",
    "insertion_auc_random": "insertion AUC, random order",
}
# The pipeline's own checks of its gradients (Adebayo et al.), not claims of the log: the
# claims summary lists them as a group of their own.
SANITY_METRICS = ("model_randomisation_mean", "label_randomisation")


def load_gradient_metrics(metrics_path: Path, metrics: dict[str, Any]) -> dict[str, Any] | None:
    """The ``result`` of the gradient metrics next to ``metrics_path`` (None if not computed);
    a file of another experiment, seed or config is an error."""
    path = Path(metrics_path).parent / GRADIENT_METRICS_FILE
    if not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise PaperInputError(f"{path} is not valid JSON (line {error.lineno}); delete it and "
                              "rerun the gradient_metrics rule") from None
    for key in ("experiment", "seed", "config_hash"):
        if payload.get(key) != metrics[key]:
            raise PaperInputError(f"{path}: {key} {payload.get(key)!r} does not match its run's "
                                  f"{metrics[key]!r}; rerun the gradient_metrics rule")
    return payload["result"]


def summarize_gradient_metrics(name: str, results: list[dict | None]) -> dict[str, Stat] | None:
    """Mean and std over seeds of each of :data:`METRIC_NAMES` (None when no seed has the file).

    Either every seed has its gradient metrics or none: a partial set would mix seeds.
    """
    present = [r for r in results if r is not None]
    if not present:
        return None
    if len(present) != len(results):
        raise PaperInputError(f"experiment '{name}': gradient_metrics.json exists for only "
                              f"{len(present)} of {len(results)} seeds; run the gradient_metrics rule")
    return {key: stat([r.get(key) for r in present]) for key in METRIC_NAMES}


def _wall_time(experiment: dict[str, Any]) -> Stat:
    return stat([run["wall_time_s"] for run in experiment["runs"]])


def _evaluation(experiment: dict[str, Any], kind: str) -> dict[str, Any]:
    summary = experiment["evaluations"].get(kind)
    if summary is None:
        raise PaperInputError(f"claim on '{experiment['name']}' needs its {kind} evaluation; add "
                              f"{kind} to its evaluations in config.yaml")
    return summary


def _difference_stat(after: Stat, before: Stat) -> Stat:
    """after - before, seed by seed."""
    return stat([None if a is None or b is None else a - b
                 for a, b in zip(after["per_seed"], before["per_seed"], strict=True)])


def _slot_update_protocol(experiment: dict[str, Any], claim: dict[str, Any]) -> dict[str, Any]:
    """The summary of the slot-update protocol ``claim['protocol']`` (default the log's)."""
    protocols = _evaluation(experiment, "slot_update")["protocols"]
    name = claim.get("protocol", "revealed")
    protocol = next((p for p in protocols if p["name"] == name), None)
    if protocol is None:
        raise PaperInputError(f"claim '{claim['text']}': no slot-update protocol '{name}'; "
                              f"valid: {', '.join(p['name'] for p in protocols)}")
    return protocol


def _slot_update_gain(experiment: dict[str, Any], claim: dict[str, Any]) -> Stat:
    """Points of held-out accuracy a slot update adds (protocol ``claim['protocol']``)."""
    held_out = _slot_update_protocol(experiment, claim)["held_out"]
    return _difference_stat(held_out["after"]["accuracy"], held_out["before"]["accuracy"])


def _slot_update_retention(experiment: dict[str, Any], claim: dict[str, Any]) -> Stat:
    """Percent of the test images classified correctly before a slot update (protocol
    ``claim['protocol']``) that are still classified correctly after it."""
    retained = _slot_update_protocol(experiment, claim).get("retained")
    if retained is None:
        raise PaperInputError(f"claim '{claim['text']}': the slot_update evaluation of "
                              f"'{experiment['name']}' predates the retention count; rerun it")
    return retained["accuracy_after"]


def _ood_auroc(experiment: dict[str, Any], claim: dict[str, Any]) -> Stat:
    """AUROC of the best slot margin, test set against the OOD set ``claim['set']``."""
    sets = _evaluation(experiment, "ood")["sets"]
    entry = next((s for s in sets if s["key"] == claim.get("set")), None)
    if entry is None:
        raise PaperInputError(f"claim '{claim['text']}': no OOD set '{claim.get('set')}'; "
                              f"valid: {', '.join(s['key'] for s in sets)}")
    return entry["auroc"]


def _class_incremental_auroc(experiment: dict[str, Any], claim: dict[str, Any]) -> Stat:
    """AUROC of the best slot margin, seen against unseen classes."""
    return _evaluation(experiment, "class_incremental")["auroc"]


def _pgd_accuracy(experiment: dict[str, Any], claim: dict[str, Any]) -> Stat:
    """Accuracy (%) under L-infinity PGD at ``claim['eps']``."""
    attacks = _evaluation(experiment, "attacks")["attacks"]
    attack = next((a for a in attacks if math.isclose(a["eps"], claim.get("eps", -1.0))), None)
    if attack is None:
        raise PaperInputError(f"claim '{claim['text']}': '{experiment['name']}' was not attacked "
                              f"at eps {claim.get('eps')}; valid: "
                              f"{', '.join(str(a['eps']) for a in attacks)}")
    return attack["accuracy"]


def _layer(experiment: dict[str, Any], kind: str, claim: dict[str, Any]) -> dict[str, Any]:
    """The layer ``claim['layer']`` of the ``kind`` evaluation (its first layer by default)."""
    layers = _evaluation(experiment, kind)["layers"]
    name = claim.get("layer")
    layer = next((entry for entry in layers if name in (None, entry["layer"])), None)
    if layer is None:
        raise PaperInputError(f"claim '{claim['text']}': the {kind} evaluation of "
                              f"'{experiment['name']}' has no layer '{name}'; valid: "
                              f"{', '.join(entry['layer'] for entry in layers) or 'none'}")
    return layer


def _dead_units(experiment: dict[str, Any], claim: dict[str, Any]) -> Stat:
    """Share of the units of the first layer of ReLU-like units (or ``claim['layer']``) that
    never fire on the test set."""
    return _layer(experiment, "unit_activity", claim)["dead_share"]


def _representation_correlation(experiment: dict[str, Any], claim: dict[str, Any]) -> Stat:
    """Mean absolute Pearson correlation between the representation units on the test set."""
    representation = _evaluation(experiment, "unit_activity")["representation"]
    if representation is None:
        raise PaperInputError(f"claim '{claim['text']}': '{experiment['name']}' has no "
                              "representation units (no SoftMaxPool); drop the claim")
    return representation["mean_abs_correlation"]


def _hidden_noise_stability(experiment: dict[str, Any], claim: dict[str, Any]) -> Stat:
    """Noise stability of the input gradients of the units of hidden layer ``claim['layer']``."""
    return _layer(experiment, "hidden_noise_stability", claim)["noise_stability"]


def _top_view_share(experiment: dict[str, Any], claim: dict[str, Any]) -> Stat:
    """Percent of the maxima over views that the most used view wins (of the first view layer
    or ``claim['layer']``), per seed: near 100 when the layer does not use its views."""
    per_view = [view["percent"]["per_seed"] for view in _layer(experiment, "view_usage", claim)["views"]]
    return stat([None if None in shares else max(shares) for shares in zip(*per_view, strict=True)])


def _label_error_recall(experiment: dict[str, Any], claim: dict[str, Any]) -> Stat:
    """Share (%) of the flipped training labels that only singleton slots match."""
    return _evaluation(experiment, "label_errors")["recall"]


def _label_error_precision(experiment: dict[str, Any], claim: dict[str, Any]) -> Stat:
    """Share (%) of the training images only singleton slots match whose label was flipped."""
    return _evaluation(experiment, "label_errors")["precision"]


def _generalisation_gap(experiment: dict[str, Any], claim: dict[str, Any]) -> Stat:
    """Points of train over test accuracy of the final model, both in eval mode."""
    return _evaluation(experiment, "train_fit")["gap"]


# Metrics of the extra evaluations: name -> (label, how it is measured from a summary).
EVALUATION_METRICS = {
    "slot_update_gain": ("held-out accuracy gain of a slot update", _slot_update_gain),
    "slot_update_retention": ("correct before a slot update, still correct (%)",
                              _slot_update_retention),
    "ood_auroc": ("AUROC, test set vs OOD set", _ood_auroc),
    "class_incremental_auroc": ("AUROC, seen vs unseen classes", _class_incremental_auroc),
    "pgd_accuracy": ("accuracy under PGD", _pgd_accuracy),
    "dead_units": ("share of dead units", _dead_units),
    "representation_correlation": ("mean |corr.| of representation units",
                                   _representation_correlation),
    "hidden_noise_stability": ("noise stability of hidden units", _hidden_noise_stability),
    "top_view_share": ("maxima won by the most used view (%)", _top_view_share),
    "label_error_recall": ("flipped labels caught by singleton slots", _label_error_recall),
    "label_error_precision": ("singleton-matched images with flipped labels",
                              _label_error_precision),
    "generalisation_gap": ("train-test accuracy gap", _generalisation_gap),
}
METRIC_LABELS = {"test_accuracy": "accuracy", "time_ratio": "training time ratio",
                 "slots": "slots", **METRIC_NAMES,
                 **{name: label for name, (label, _) in EVALUATION_METRICS.items()}}
# Metrics in percent points (one decimal); the others are ratios or scores (two decimals).
POINT_METRICS = ("test_accuracy", "slot_update_gain", "pgd_accuracy", "ood_auroc",
                 "class_incremental_auroc", "generalisation_gap", "top_view_share",
                 "slot_update_retention", "label_error_recall", "label_error_precision")


def _measure(experiment: dict[str, Any], metric: str, claim: dict[str, Any]) -> Stat:
    if metric == "test_accuracy":
        return experiment["accuracy"]
    if metric == "slots":
        if experiment["slots"] is None:
            raise PaperInputError(f"claim on '{experiment['name']}' counts slots, but its runs "
                                  "record none; slots claims are about INH models")
        return experiment["slots"]
    if metric in EVALUATION_METRICS:
        measured = EVALUATION_METRICS[metric][1](experiment, claim)
        if measured is None or measured["mean"] is None:
            raise PaperInputError(f"claim '{claim['text']}': no seed of '{experiment['name']}' "
                                  f"has a {metric} in its evaluation files")
        return measured
    metrics = experiment["gradient_metrics"]
    if metrics is None:
        raise PaperInputError(f"claim on '{experiment['name']}' needs its gradient metrics; run "
                              "the gradient_metrics rule for every seed")
    measured = metrics[metric]
    if measured["mean"] is None:
        raise PaperInputError(f"experiment '{experiment['name']}' has no {metric} "
                              "(label_randomisation needs a random_label_twin)")
    return measured


def _ratio_evidence(experiment: dict, other: dict, value: float) -> tuple[Stat, float, float]:
    this, that = _wall_time(experiment), _wall_time(other)
    if not that["mean"]:
        raise PaperInputError(f"experiment '{other['name']}' has no training time to compare with")
    ratio = this["mean"] / that["mean"]
    cv = math.hypot(this["std"] / this["mean"] if this["mean"] else 0.0, that["std"] / that["mean"])
    return {"mean": ratio, "std": ratio * cv, "n": this["n"]}, ratio - value, ratio * cv


def evaluate_claim(claim: dict[str, Any], by_name: dict[str, dict], margins: dict[str, float]
                   ) -> dict[str, Any]:
    """One claim with its evidence (measured, compared, difference, spread) and verdict."""
    experiment = by_name.get(claim["experiment"])
    other = by_name.get(claim.get("than")) if claim.get("than") else None
    for name, found in ((claim["experiment"], experiment), (claim.get("than"), other)):
        if name and found is None:
            raise PaperInputError(f"claim '{claim['text']}' is about experiment '{name}', which "
                                  "has no results; train it too (or drop the claim)")
    metric, relation = claim["metric"], claim["relation"]
    default_margin = margins.get(metric, DEFAULT_MARGIN["similar"]) if relation == "similar" else 0.0
    margin = float(claim.get("margin", default_margin))
    value = claim.get("value")
    if metric == "time_ratio":
        value = 1.0 if value is None else float(value)
        measured, difference, spread = _ratio_evidence(experiment, other, value)
        compared = None
    else:
        measured = _measure(experiment, metric, claim)
        compared = _measure(other, metric, claim) if other else None
        base = compared["mean"] if compared else float(value)
        difference = measured["mean"] - base
        spread = math.hypot(measured["std"], compared["std"] if compared else 0.0)
    return {
        "experiment": experiment,
        "than": other,
        "text": claim["text"],
        "metric": metric,
        "metric_label": METRIC_LABELS[metric],
        "relation": relation,
        "value": value,
        "margin": margin,
        "measured": measured,
        "compared": compared,
        "difference": difference,
        "spread": spread,
        "verdict": verdict(difference, spread, relation, margin),
        "group": claim_group(claim),
        "single_seed": measured["n"] < 2,  # the spread is unknown and counts as 0
        "points": metric in POINT_METRICS,
    }


def claim_group(claim: dict[str, Any]) -> str:
    """Where the claims summary lists a config claim: ``log`` (a claim of the research log),
    ``beyond`` (a question the log did not test, e.g. the robust twins) or ``sanity`` (the
    pipeline's own checks; the default for the sanity metrics)."""
    return claim.get("group") or ("sanity" if claim["metric"] in SANITY_METRICS else "log")


def claim_margins(claims: dict[str, Any] | None) -> dict[str, float]:
    """The margins per metric: config.yaml's ``claims.margins`` over the defaults."""
    return {"test_accuracy": DEFAULT_MARGIN["similar"], "reported_accuracy": REPORTED_MARGIN,
            "reported_slots": REPORTED_SLOTS_MARGIN, **(claims or {}).get("margins", {})}


def claims_table(experiments: list[dict[str, Any]], claims: dict[str, Any] | None
                 ) -> list[dict[str, Any]]:
    """Every testable claim, in experiment order: that an experiment reaches the accuracy the
    log reports for it (at least that accuracy, within ``margins.reported_accuracy`` points)
    and keeps to its slot count (at most, within ``margins.reported_slots``), its accuracy
    finding, then its config claims. ``claims`` is config.yaml's block (None: no config
    claims, default margins)."""
    claims = claims or {}
    margins = claim_margins(claims)
    by_name = {e["name"]: e for e in experiments}
    items = [c for c in claims.get("items", []) if not _missing_experiments(c, by_name)]
    rows = []
    for e in experiments:
        if e["reported"] is not None:
            rows.append(evaluate_claim({
                "experiment": e["name"], "text": REPORTED_ACCURACY_CLAIM,
                "metric": "test_accuracy", "relation": "at_least", "value": e["reported"],
                "margin": margins["reported_accuracy"]}, by_name, margins))
        if e.get("reported_slots") is not None:
            rows.append(evaluate_claim({
                "experiment": e["name"], "text": "needs no more slots than the log reports",
                "metric": "slots", "relation": "at_most", "value": e["reported_slots"],
                "margin": margins["reported_slots"] * e["reported_slots"]}, by_name, margins))
        finding = e.get("finding") or {}
        if finding.get("relation"):
            rows.append(evaluate_claim({"experiment": e["name"], "metric": "test_accuracy",
                                        **finding}, by_name, margins))
        rows.extend(evaluate_claim(c, by_name, margins) for c in items if c["experiment"] == e["name"])
    return rows


def _missing_experiments(claim: dict[str, Any], by_name: dict[str, dict]) -> list[str]:
    return [claim[key] for key in ("experiment", "than") if claim.get(key) and claim[key] not in by_name]


def untested_claims(claims: dict[str, Any] | None, experiments: list[dict[str, Any]]
                    ) -> list[dict[str, Any]]:
    """The config claims that name an experiment without results: ``{claim, missing}``."""
    by_name = {e["name"]: e for e in experiments}
    return [{"claim": c, "missing": _missing_experiments(c, by_name)}
            for c in (claims or {}).get("items", []) if _missing_experiments(c, by_name)]
