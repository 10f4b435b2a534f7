"""The paper's result tables as CSV files (results/summary/), for the Snakemake report and
for readers who want the numbers without the PDF: one row per experiment (accuracy and
gradient metrics, mean and std over seeds) and one per claim (evidence and verdict)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from whitebox.io import atomic_write
from whitebox.paper.claims import METRIC_NAMES


def _mean_std(stat: dict | None) -> list[Any]:
    if stat is None or stat["mean"] is None:
        return ["", ""]
    return [round(stat["mean"], 4), round(stat["std"], 4)]


def experiment_rows(context: dict[str, Any]) -> list[list[Any]]:
    """Header and one row per experiment: seeds, accuracy, then each gradient metric."""
    header = ["experiment", "title", "dataset", "seeds", "test_accuracy_mean", "test_accuracy_std"]
    header += [f"{key}_{part}" for key in METRIC_NAMES for part in ("mean", "std")]
    rows = [header]
    for e in context["experiments"]:
        metrics = e["gradient_metrics"] or {}
        row = [e["name"], e["title"], e["dataset"], e["n"], *_mean_std(e["accuracy"])]
        for key in METRIC_NAMES:
            row += _mean_std(metrics.get(key))
        rows.append(row)
    return rows


def claim_rows(context: dict[str, Any]) -> list[list[Any]]:
    """Header and one row per claim of the claims table."""
    rows = [["experiment", "claim", "metric", "relation", "than", "value", "margin", "measured_mean",
             "measured_std", "compared_mean", "compared_std", "difference", "spread", "verdict"]]
    for c in context["claims"]:
        rows.append([c["experiment"]["name"], c["text"], c["metric"], c["relation"],
                     c["than"]["name"] if c["than"] else "", "" if c["value"] is None else c["value"],
                     c["margin"], *_mean_std(c["measured"]), *_mean_std(c["compared"]),
                     round(c["difference"], 4), round(c["spread"], 4), c["verdict"]])
    return rows


def write_csv(rows: list[list[Any]], path: Path) -> None:
    """``rows`` as a CSV file, written atomically."""
    table = io.StringIO()
    csv.writer(table, lineterminator="\n").writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(table.getvalue()))
