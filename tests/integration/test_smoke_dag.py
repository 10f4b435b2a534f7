"""The smoke DAG end to end: synthetic data -> training -> figures -> paper/main.pdf."""

from __future__ import annotations

import csv
import json
import re
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.integration.workspace import snakemake
from whitebox.config import figure_files, load_config
from whitebox.paper import format_pct

pytestmark = pytest.mark.slow


def dry_run_jobs(workspace: Path, *args: str) -> dict[str, int]:
    """Jobs a dry run would execute, as {rule: count}."""
    result = snakemake(workspace, "--profile", "profiles/smoke", "-n", *args)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:")[1].split("total")[0]
    rows = [line.split() for line in table.splitlines()[3:] if line.strip()]
    return {rule: int(count) for rule, count in rows}


@contextmanager
def edited(path: Path, old: str, new: str):
    """Temporarily replace ``old`` by ``new`` in ``path``."""
    original = path.read_text()
    assert old in original
    path.write_text(original.replace(old, new))
    try:
        yield
    finally:
        path.write_text(original)


@contextmanager
def moved_away(path: Path):
    """Temporarily move ``path`` aside (keeping its timestamps for the other tests)."""
    aside = path.with_name(path.name + ".aside")
    path.rename(aside)
    try:
        yield
    finally:
        aside.rename(path)


def smoke_overrides(workspace: Path) -> dict:
    """profiles/smoke/smoke.yaml: the smoke run's overrides of config.yaml (its seeds, and the
    epochs of every experiment)."""
    return yaml.safe_load((workspace / "profiles" / "smoke" / "smoke.yaml").read_text())


def smoke_seeds(workspace: Path) -> list[int]:
    """The seeds of the smoke run."""
    return smoke_overrides(workspace)["seeds"]


def test_pdf_shows_the_accuracies_from_metrics(smoke_run):
    pdf = smoke_run / "paper" / "main.pdf"
    assert pdf.stat().st_size > 10_000
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    text = text.replace("\u2212", "-")
    assert "SMOKE RUN" in text
    metrics = [json.loads(p.read_text()) for p in smoke_run.glob("results/*/*/seed*/metrics.json")]
    experiments = load_config(smoke_run / "config.yaml")["experiments"]
    assert len(metrics) == len(smoke_seeds(smoke_run)) * len(experiments)
    by_experiment: dict[str, list[float]] = {}
    for m in metrics:
        by_experiment.setdefault(m["experiment"], []).append(m["test_accuracy"])
        assert m["device"] == "cpu" and m["git_commit"] and m["config_hash"]
    for accuracies in by_experiment.values():
        mean = sum(accuracies) / len(accuracies)
        # "95.5 ± 0.4" over seeds; with one seed the spread is not printed.
        assert re.search(rf"(?<![\d.]){re.escape(format_pct(mean))}(?![\d])", text), format_pct(mean)


def test_every_run_evaluation_and_figure_is_written(smoke_run):
    config = load_config(smoke_run / "config.yaml")
    overrides = smoke_overrides(smoke_run)
    for name, entry in config["experiments"].items():
        epochs = overrides["experiments"][name]["training"]["epochs"]
        for seed in overrides["seeds"]:
            run = smoke_run / "results" / entry["dataset"] / name / f"seed{seed}"
            expected = {"model.pt", "train_log.csv", "metrics.json"}
            expected |= {f"{evaluation}.json" for evaluation in entry["evaluations"]}
            expected |= {"gradient_metrics.json"}
            assert {p.name for p in run.iterdir()} == expected
            assert len((run / "train_log.csv").read_text().splitlines()) == 1 + epochs  # + header
    for png in figure_files(config):
        assert (smoke_run / png).stat().st_size > 1000
    with (smoke_run / "results" / "summary" / "experiments.csv").open() as table:
        rows = list(csv.DictReader(table))
    assert [row["experiment"] for row in rows] == list(config["experiments"])
    assert all(0 <= float(row["alignment_mean"]) <= 1 for row in rows)
    with (smoke_run / "results" / "summary" / "claims.csv").open() as table:
        claims = list(csv.DictReader(table))
    assert {row["verdict"] for row in claims} <= {"reproduced", "reproduced (higher)",
                                                  "reproduced (lower)", "not reproduced",
                                                  "inconclusive"}
    # Config claims, accuracy findings, and the accuracies and slot counts the log reports.
    assert len(claims) == len(config["claims"]["items"]) + sum(
        bool((entry.get("finding") or {}).get("relation")) + ("test_accuracy" in entry["reported"])
        + ("slots" in entry["reported"]) for entry in config["experiments"].values())


def test_pdf_shows_the_gradient_metrics_and_the_claims(smoke_run):
    text = subprocess.run(["pdftotext", str(smoke_run / "paper" / "main.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout
    words = " ".join(text.split())
    assert "Gradient quality in numbers" in words
    # Table cells come out of pdftotext interleaved with their neighbours: first lines only.
    assert "Which claims of the log hold" in words and "One line per claim of the research log" in words
    assert "positive weights align" in words
    assert "No gradient metrics were computed" not in words


def _page_texts(pdf: Path) -> list[str]:
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    return [" ".join(page.split()) for page in text.split("\f")]


def test_pdf_answers_first_and_fits_its_pages(smoke_run):
    """The claims summary is page 2 or 3, the main text (before the appendices) at most 30
    pages, and no line or table runs more than 5 pt into the margin."""
    pages = _page_texts(smoke_run / "paper" / "main.pdf")
    summary = next(i for i, page in enumerate(pages, 1) if "Which claims of the log hold" in page)
    assert summary in (2, 3)
    appendix = next(i for i, page in enumerate(pages, 1)
                    if re.search(r"\bA Training configuration\b", page))
    assert appendix - 1 <= 30, f"main text runs to page {appendix - 1}"
    log = (smoke_run / "paper" / "main.log").read_text(errors="replace")
    overfull = [float(width) for width in re.findall(r"Overfull \\[hv]box \(([\d.]+)pt too", log)]
    assert all(width <= 5 for width in overfull), f"overfull boxes (pt): {overfull}"


def test_report_shows_figures_metrics_and_claims(smoke_run):
    result = snakemake(smoke_run, "--profile", "profiles/smoke", "--report", "report.html")
    assert result.returncode == 0, result.stderr[-2000:]
    report = (smoke_run / "report.html").read_text(errors="replace")
    for item in ("claims.csv", "experiments.csv", "main.pdf", "Metrics and claims",
                 "gumbel_unit59.png"):
        assert item in report, item


def test_a_named_figure_is_its_own_target(smoke_run):
    png = smoke_run / "results" / "cifar2" / "gumbel_unit59.png"
    with moved_away(png):
        jobs = dry_run_jobs(smoke_run, "results/cifar2/gumbel_unit59.png")
    assert jobs == {"noise_gradients": 1}


def test_slot_figure_needs_both_compared_models(smoke_run):
    """results/cifar3/slots.png draws augmax_cifar3 and its baseline: it rebuilds the one missing."""
    png = smoke_run / "results" / "cifar3" / "slots.png"
    baseline = smoke_run / "results" / "cifar3" / "augmax_cifar3_noaug" / "seed0" / "model.pt"
    with moved_away(png), moved_away(baseline):
        jobs = dry_run_jobs(smoke_run, "results/cifar3/slots.png")
    assert jobs == {"train": 1, "unit_grid": 1}


def test_prototype_figure_rebuilds_its_model_only(smoke_run):
    """A CUB figure is its own target: it retrains the first seed's model it draws, no more."""
    png = smoke_run / "results" / "cub200" / "cub_flexparts_bagnet33_prototype_parts.png"
    model = smoke_run / "results" / "cub200" / "cub_flexparts_bagnet33" / "seed0" / "model.pt"
    with moved_away(png), moved_away(model):
        jobs = dry_run_jobs(smoke_run, str(png.relative_to(smoke_run)))
    assert jobs == {"train": 1, "prototype_parts": 1}


def test_gpu_experiments_skip_needs_only_a_new_paper(smoke_run):
    """Leaving out the GPU stage (a laptop run) drops its jobs; everything else is up to date
    (the accuracy-quality figure loses its CUB points)."""
    jobs = dry_run_jobs(smoke_run, "--config", "gpu_experiments=skip")
    assert jobs == {"presentation": 1, "paper_generated": 1, "paper_pdf": 1, "summary_tables": 1,
                    "accuracy_quality": 1, "all": 1}


def test_changing_a_claim_threshold_reruns_only_the_tables(smoke_run):
    config = smoke_run / "config.yaml"
    with edited(config, "    alignment: 0.02\n", "    alignment: 0.03\n"):
        jobs = dry_run_jobs(smoke_run)
    assert jobs == {"paper_generated": 1, "paper_pdf": 1, "summary_tables": 1, "all": 1}


def test_rerun_is_a_no_op(smoke_run):
    assert dry_run_jobs(smoke_run) == {}


def test_editing_a_template_reruns_only_the_paper(smoke_run):
    template = smoke_run / "paper" / "templates" / "results_table.tex.j2"
    with edited(template, "\\begin{table}", "% edited\n\\begin{table}"):
        assert dry_run_jobs(smoke_run) == {"paper_generated": 1, "paper_pdf": 1, "all": 1}


def test_changing_an_experiment_retrains_only_that_experiment(smoke_run):
    overrides = smoke_run / "profiles" / "smoke" / "smoke.yaml"
    with edited(overrides, "directional:\n    training: {epochs: 2}",
                "directional:\n    training: {epochs: 3}"):
        jobs = dry_run_jobs(smoke_run)
    seeds = len(smoke_seeds(smoke_run))
    assert jobs["train"] == seeds  # every seed of directional, not conj_disj
    assert jobs["gradients"] == 1 and jobs["filters"] == 1
    assert jobs["gradient_metrics"] == seeds


def test_bad_config_value_stops_with_one_line(smoke_run):
    result = snakemake(smoke_run, "--profile", "profiles/smoke", "-n", "--config", "device=gpu")
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("whitebox:")]
    assert errors == ["whitebox: config error at device: 'gpu' is not one of auto, cpu, cuda, cuda:N"]
