"""What the accuracy-vs-gradient-quality figure shows, from result files (no matplotlib).

Every experiment with gradient metrics is one point of its dataset's panels: the mean test
accuracy over its seeds against the mean of a gradient metric (:data:`QUALITY_METRICS`), with
the seeds' sample std as error bars. Pairs join a twin to its variant: an experiment's
finding ``than`` -> the experiment, and each claim's ``than`` -> its ``experiment``, where both
are drawn on the same dataset. :func:`load_runs` reads the files; :func:`quality_plot` is pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from whitebox.paper.claims import METRIC_NAMES, load_gradient_metrics, summarize_gradient_metrics
from whitebox.paper.context import group_by_experiment, load_metrics
from whitebox.paper.evaluations import stat

QUALITY_METRICS = ("alignment", "noise_stability")  # the x axes, one row of panels each
MIN_POINTS = 2  # a dataset's panels need at least this many experiments
NO_FAMILY = "no family"  # the colour of experiments without a family (first models, INH)


@dataclass(frozen=True)
class Estimate:
    """Mean and sample std over ``n`` seeds."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, summary: dict) -> Estimate:
        """From a ``whitebox.paper.evaluations.Stat``."""
        return cls(summary["mean"], summary["std"], summary["n"])


@dataclass(frozen=True)
class QualityPoint:
    """One experiment: its test accuracy (%) and gradient metrics over seeds."""

    experiment: str
    dataset: str
    family: str
    accuracy: Estimate
    metrics: dict[str, Estimate]


@dataclass(frozen=True)
class QualityPlot:
    """The points per dataset (most points first) and the ``(twin, variant)`` arrows."""

    points: dict[str, list[QualityPoint]]
    pairs: list[tuple[str, str]]

    def families(self) -> list[str]:
        """Every family drawn, in name order with :data:`NO_FAMILY` last."""
        drawn = {point.family for points in self.points.values() for point in points}
        return sorted(drawn - {NO_FAMILY}) + [NO_FAMILY] * (NO_FAMILY in drawn)

    def info(self) -> dict[str, Any]:
        """What the figure shows, for its PNG text chunk (the paper's caption reads it)."""
        return {"datasets": list(self.points),
                "points": {dataset: len(points) for dataset, points in self.points.items()},
                "pairs": [list(pair) for pair in self.pairs], "families": self.families(),
                "metrics": list(QUALITY_METRICS)}


def metric_label(metric: str) -> str:
    """The axis label of a gradient metric (as the paper names it)."""
    return METRIC_NAMES[metric]


Run = tuple[Path, dict, dict | None]  # metrics.json's path, its content, the gradient metrics


def load_runs(metrics_paths: Iterable[Path]) -> list[Run]:
    """Each run's metrics.json and the ``result`` of its gradient metrics (None if absent)."""
    runs = []
    for path in map(Path, metrics_paths):
        metrics = load_metrics(path)
        runs.append((path, metrics, load_gradient_metrics(path, metrics)))
    return runs


def quality_plot(runs: Iterable[Run], presentation: dict[str, dict],
                 claims: dict | None = None) -> QualityPlot:
    """The points and pairs of ``runs`` (see :func:`load_runs`); ``presentation`` gives each
    experiment's family and finding (as config.presentation), ``claims`` (config.yaml's
    block) more pairs.
    Experiments without gradient metrics are left out, and so are datasets with fewer than
    :data:`MIN_POINTS` experiments (a single point compares nothing)."""
    runs = list(runs)
    results = {(metrics["experiment"], metrics["seed"]): result for _, metrics, result in runs}
    by_dataset: dict[str, list[QualityPoint]] = {}
    for name, seeds in group_by_experiment((path, metrics) for path, metrics, _ in runs).items():
        summary = summarize_gradient_metrics(name, [results[name, m["seed"]] for _, m in seeds])
        if summary is None:
            continue
        shown = presentation.get(name, {})
        dataset = seeds[0][1]["dataset"]
        by_dataset.setdefault(dataset, []).append(QualityPoint(
            experiment=name, dataset=dataset, family=shown.get("family") or NO_FAMILY,
            accuracy=Estimate.of(stat([m["test_accuracy"] for _, m in seeds])),
            metrics={key: Estimate.of(summary[key]) for key in QUALITY_METRICS}))
    by_dataset = {dataset: points for dataset, points in by_dataset.items()
                  if len(points) >= MIN_POINTS}
    order = sorted(by_dataset, key=lambda dataset: -len(by_dataset[dataset]))  # stable: ties keep order
    dataset_of = {p.experiment: p.dataset for points in by_dataset.values() for p in points}
    return QualityPlot(points={dataset: by_dataset[dataset] for dataset in order},
                       pairs=twin_pairs(presentation, claims, dataset_of))


def twin_pairs(presentation: dict[str, dict], claims: dict | None,
               dataset_of: dict[str, str]) -> list[tuple[str, str]]:
    """``(than, experiment)`` of every finding and claim that compares two drawn experiments
    of one dataset, once each, in config order."""
    candidates = [((shown.get("finding") or {}).get("than"), name)
                  for name, shown in presentation.items()]
    candidates += [(claim.get("than"), claim["experiment"]) for claim in (claims or {}).get("items", [])]
    pairs: list[tuple[str, str]] = []
    for twin, variant in candidates:
        same_dataset = twin in dataset_of and dataset_of.get(variant) == dataset_of[twin]
        if same_dataset and twin != variant and (twin, variant) not in pairs:
            pairs.append((twin, variant))
    return pairs
