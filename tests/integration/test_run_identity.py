"""What reruns after an edit, on a finished smoke workspace (dry runs): a job's identity is its
run spec and the digest of the code it runs, so presentation edits never retrain, and neither
do touching files, moving the workspace or editing code training does not run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.integration.test_smoke_dag import dry_run_jobs, edited
from tests.integration.workspace import snakemake
from whitebox.code_identity import model_modules
from whitebox.config import load_config

pytestmark = pytest.mark.slow

PAPER_JOBS = {"presentation", "paper_generated", "paper_pdf", "summary_tables", "all"}
FIGURE_RULES = {"gradients", "filters", "slots", "slot_update", "noise_gradients", "unit_grid",
                "kernel_views", "prototype_parts", "gradient_comparison"}  # the last: stage titles


def experiments_running(workspace: Path, module: str) -> set[str]:
    """The experiments whose model (or a model their model_args name) ``module`` registers."""
    config = load_config(workspace / "config.yaml")
    return {name for name, entry in config["experiments"].items()
            if module in model_modules(entry["model"], entry["model_args"])}


def n_seeds(workspace: Path) -> int:
    from tests.integration.test_smoke_dag import smoke_seeds

    return len(smoke_seeds(workspace))


def test_a_title_reruns_its_figures_and_the_paper_only(smoke_run):
    config = smoke_run / "config.yaml"
    with edited(config, "    title: Directional\n", "    title: Directional network\n"):
        jobs = dry_run_jobs(smoke_run)
    assert "train" not in jobs and "gradient_metrics" not in jobs and "evaluate" not in jobs
    assert set(jobs) <= PAPER_JOBS | FIGURE_RULES and jobs.get("paper_generated") == 1


@pytest.mark.parametrize(("old", "new"), [
    ('finding: {text: "', 'finding: {text: "Reworded: '),  # a finding's words
    ("    alignment: 0.02\n", "    alignment: 0.03\n"),  # a claim's margin
])
def test_findings_and_claims_rerun_only_the_paper(smoke_run, old, new):
    with edited(smoke_run / "config.yaml", old, new):
        assert set(dry_run_jobs(smoke_run)) <= PAPER_JOBS


def test_a_figure_option_reruns_that_figure_and_the_paper(smoke_run):
    with edited(smoke_run / "config.yaml", "gradients: {n_images: 60", "gradients: {n_images: 59"):
        jobs = dry_run_jobs(smoke_run)
    assert set(jobs) - PAPER_JOBS == {"gradients"}


def test_figure_code_reruns_its_figures_never_training(smoke_run):
    source = smoke_run / "src" / "whitebox" / "figures" / "slots.py"
    with edited(source, "\ndef render_slots(", "\nEDITED = True\n\n\ndef render_slots("):
        jobs = dry_run_jobs(smoke_run)
    assert set(jobs) - PAPER_JOBS == {"slots", "noise_gradients"}  # the kinds slots.py draws
    with edited(source, "\ndef render_slots(", "\n# a comment\ndef render_slots("):
        assert dry_run_jobs(smoke_run) == {}


def test_help_texts_and_touched_files_rerun_nothing(smoke_run):
    train = smoke_run / "src" / "whitebox" / "cli" / "train.py"
    with edited(train, 'help="prepared tensors of the base dataset"',
                'help="the prepared tensors of the base dataset"'):
        assert dry_run_jobs(smoke_run) == {}
    for path in (smoke_run / "src").rglob("*.py"):
        os.utime(path)
    (smoke_run / "config.yaml").touch()
    assert dry_run_jobs(smoke_run) == {}


def test_a_copied_workspace_reruns_nothing(smoke_run, tmp_path):
    copy = tmp_path / "elsewhere"
    shutil.copytree(smoke_run, copy, symlinks=True)  # copy2: timestamps kept, like cp -a
    assert dry_run_jobs(copy) == {}
    result = snakemake(copy, "--profile", "profiles/smoke", "-n", "--summary")
    assert result.returncode == 0


def test_a_model_module_retrains_only_its_experiments(smoke_run):
    source = smoke_run / "src" / "whitebox" / "models" / "hashing.py"
    with edited(source, '\n@register_model("inh")', '\nEDITED = True\n\n\n@register_model("inh")'):
        jobs = dry_run_jobs(smoke_run)
    expected = experiments_running(smoke_run, "whitebox.models.hashing")
    assert {"inh_mnist", "mlp_mnist"} <= expected
    assert jobs["train"] == len(expected) * n_seeds(smoke_run)


def test_model_args_retrain_that_experiment(smoke_run):
    overrides = smoke_run / "profiles" / "smoke" / "smoke.yaml"
    with edited(overrides, "\n  gumbel2:\n    training: {epochs: 2}\n",
                "\n  gumbel2:\n    training: {epochs: 2}\n    model_args: {logit_scale: 9.0}\n"):
        jobs = dry_run_jobs(smoke_run)
    assert jobs["train"] == n_seeds(smoke_run)


def test_the_training_loop_retrains_everything(smoke_run):
    loop = smoke_run / "src" / "whitebox" / "training" / "loop.py"
    with edited(loop, "\ndef fit(", "\nEDITED = True\n\n\ndef fit("):
        jobs = dry_run_jobs(smoke_run)
    experiments = load_config(smoke_run / "config.yaml")["experiments"]
    assert jobs["train"] == len(experiments) * n_seeds(smoke_run)


def test_seeds_on_the_command_line_are_integers(smoke_run):
    jobs = dry_run_jobs(smoke_run, "--config", "seeds=[0,1]")
    assert jobs["train"] == len(load_config(smoke_run / "config.yaml")["experiments"])


def test_an_unknown_experiment_in_a_target_is_one_line(smoke_run):
    result = snakemake(smoke_run, "--profile", "profiles/smoke", "-n",
                       "results/cifar2/nosuch/seed0/metrics.json")
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines()
             if line.startswith("whitebox:") or "Traceback" in line or "Error" in line]
    assert lines == ["whitebox: unknown experiment 'nosuch'; valid: " + ", ".join(
        sorted(load_config(smoke_run / "config.yaml")["experiments"]))], lines
