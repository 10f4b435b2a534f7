"""Gradient metrics over seeds, and the claims table: the log's testable claims with verdicts.

Every run has a ``gradient_metrics.json`` next to its ``metrics.json`` (written by
``whitebox gradient-metrics``, see :mod:`whitebox.explain.metrics`); its scalar results
are summarised over an experiment's seeds as mean and sample std (:data:`METRIC_NAMES`).

A claim (config.yaml ``claims.items``, every accuracy ``finding`` with a relation, and
"reaches the accuracy the log reports" for every stage with a reported accuracy) says
that an experiment's metric is lower than, higher than or similar to that of another
experiment (``than``) or a number (``value``). The evidence is the difference d of the
means (or d = mean - value) and its seed-to-seed spread s (sqrt of the summed variances;
the std alone against a value); the verdict is :func:`whitebox.paper.findings.verdict`
with the claim's margin, by default ``claims.margins[metric]`` for "similar" and 0 for
"lower"/"higher". ``time_ratio`` compares training times: r = mean time / mean time of
``than``, d = r - value (value 1 unless given), s = r * sqrt(cv^2 + cv_than^2) with cv the
coefficient of variation of each experiment's wall times.
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
}
METRIC_LABELS = {"test_accuracy": "test accuracy", "time_ratio": "training time ratio",
                 **METRIC_NAMES}


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


def _measure(experiment: dict[str, Any], metric: str) -> Stat:
    if metric == "test_accuracy":
        return experiment["accuracy"]
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
        measured = _measure(experiment, metric)
        compared = _measure(other, metric) if other else None
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
    }


def claims_table(experiments: list[dict[str, Any]], claims: dict[str, Any] | None
                 ) -> list[dict[str, Any]]:
    """Every testable claim, in experiment order: that an experiment reaches the accuracy the
    log reports for it (similar within ``margins.reported_accuracy`` points), its accuracy
    finding, then its config claims. ``claims`` is config.yaml's block (None: no config
    claims, default margins)."""
    claims = claims or {}
    margins = {"test_accuracy": DEFAULT_MARGIN["similar"], "reported_accuracy": REPORTED_MARGIN,
               **claims.get("margins", {})}
    by_name = {e["name"]: e for e in experiments}
    items = claims.get("items", [])
    unknown = sorted({c["experiment"] for c in items} - set(by_name))
    if unknown:
        raise PaperInputError(f"claims about experiment(s) without results: {', '.join(unknown)}; "
                              "train them too (or drop the claims)")
    rows = []
    for e in experiments:
        if e["reported"] is not None:
            rows.append(evaluate_claim({
                "experiment": e["name"], "text": "reaches the test accuracy the log reports",
                "metric": "test_accuracy", "relation": "similar", "value": e["reported"],
                "margin": margins["reported_accuracy"]}, by_name, margins))
        finding = e.get("finding") or {}
        if finding.get("relation"):
            rows.append(evaluate_claim({"experiment": e["name"], "metric": "test_accuracy",
                                        **finding}, by_name, margins))
        rows.extend(evaluate_claim(c, by_name, margins) for c in items if c["experiment"] == e["name"])
    return rows


def verdict_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many claims got each verdict."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    return counts
