"""The smoke DAG sent through profiles/slurm to a real (private, single-node) SLURM cluster
gives the same results and paper as the local run.

The cluster run starts from a copy of the finished local smoke run without the results of a
few experiments (one of each kind of job: an MLP with attacks, a LeNet with its gradient
figures, INH with its slot update, out-of-distribution and attack evaluations, a GPU-marked
CUB prototype network with its parts figure). Their training and evaluations go through
SLURM, everything downstream (figures, tables, paper) is rebuilt from them, and all of it must
equal the local run; the other experiments must not rerun. Rerunning all of the smoke DAG
through SLURM proved nothing more and cost a quarter of CI.

The cluster is Debian's slurmctld/slurmd/munge, started and stopped by the test as root
(tests/integration/slurm_cluster.py). This is the CI variant of a cluster run: the node has
no GPU, so the CUB stage's training jobs ask for none (``--set-resources train:gpu=0``),
training takes the smoke profile's threads (its results are compared with the local run's),
evaluations at most the node's 2 CPUs, and job states come from ``squeue`` (no accounting).
Everything else, from job submission to the retries, is the profile as users run it.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import require
from tests.integration.slurm_cluster import local_slurm, missing_requirements, slurm_smoke_args
from tests.integration.workspace import make_workspace, snakemake
from whitebox.config import load_config

pytestmark = pytest.mark.slow

# What may differ between two runs of the same DAG: how long things took, and when.
TIMING_KEYS = {"wall_time_s", "finished_at"}
# Training times as the paper prints them: "12.3 s", "4.1 min", "1.2 h", and relative
# training times: "$\times1.3$" in a family table, "$\times1.3 \pm 0.2$" in the claims table
# (×1.3 ± 0.2 in the PDF).
TIME_PATTERNS = [re.compile(r"\d[\d,.]*(?:\s|~|\\,)*(?:s|min|h)\b"),
                 re.compile(r"(?:\$\\times|×)\s*\d+\.\d(?:\s*(?:\\pm|±)\s*\d+\.\d)?\$?")]
# A verdict on a claimed slowdown depends on those times: the paper's verdicts are compared
# through results/summary/claims.csv instead. A verdict reads "not reproduced" in the PDF's
# text and may read "\mbox{not} \mbox{reproduced}" in the TeX.
VERDICTS = re.compile(r"(?:not(?:\}\s*\\mbox\{|\s+))?reproduced(?: \d+)?|inconclusive(?: \d+)?")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> dict[str, str]:
    """A running single-node SLURM; the environment that points clients at it."""
    reason = missing_requirements()
    require(reason is None, f"no local SLURM cluster: {reason}")
    with local_slurm(tmp_path_factory.mktemp("cluster")) as env:
        yield env


# The experiments whose runs the cluster redoes (see the module's docstring).
THROUGH_SLURM = {"mlp_mnist": "mnist", "positive_lenet": "cifar2", "inh_mnist": "mnist",
                 "cub_protopnet_resnet34": "cub200"}


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory, cluster, smoke_run) -> tuple[Path, subprocess.CompletedProcess]:
    """The smoke DAG through the SLURM profile, in a copy of the local run without the runs
    of THROUGH_SLURM."""
    workspace = tmp_path_factory.mktemp("slurm") / "workspace"
    shutil.copytree(smoke_run, workspace, symlinks=True)
    removed = []
    for experiment, dataset in THROUGH_SLURM.items():
        runs = workspace / "results" / dataset / experiment
        removed += [str(path.relative_to(workspace)) for path in runs.rglob("*") if path.is_file()]
        shutil.rmtree(runs)
    # Named as targets: Snakemake leaves deleted intermediate files alone while what was built
    # from them (the paper) is there; made again, they rerun everything built from them.
    result = snakemake(workspace, *removed, "all", *slurm_smoke_args(), env=cluster, timeout=1800)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return workspace, result


def _metrics(workspace: Path) -> dict[str, dict]:
    runs = {}
    for path in sorted(workspace.glob("results/*/*/seed*/metrics.json")):
        metrics = json.loads(path.read_text())
        runs[str(path.relative_to(workspace))] = {k: v for k, v in metrics.items() if k not in TIMING_KEYS}
    return runs


def _train_log(path: Path) -> list[dict]:
    with path.open() as table:
        return [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in csv.DictReader(table)]


def _without_times(text: str) -> str:
    for pattern in TIME_PATTERNS:
        text = pattern.sub("<time>", text)
    return VERDICTS.sub("<verdict>", text)


def _claims(workspace: Path) -> list[dict]:
    """results/summary/claims.csv, without the measurements of training-time claims."""
    with (workspace / "results" / "summary" / "claims.csv").open() as table:
        rows = list(csv.DictReader(table))
    timing = ("measured_mean", "measured_std", "difference", "spread", "verdict")
    return [{k: v for k, v in row.items() if row["metric"] != "time_ratio" or k not in timing}
            for row in rows]


def test_claims_and_their_verdicts_equal_the_local_run(slurm_run, smoke_run):
    workspace, _ = slurm_run
    ours, theirs = _claims(workspace), _claims(smoke_run)
    assert len(ours) > 20 and ours == theirs


def test_every_cluster_job_went_through_slurm(slurm_run, smoke_run):
    workspace, result = slurm_run
    output = result.stdout + result.stderr
    submitted = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+)", output)
    stats = output.split("Job stats:")[1].split("total")[0]
    rows = [line.split() for line in stats.splitlines()[3:] if line.strip()]
    jobs = {rule: int(count) for rule, count in rows}
    experiments = load_config(workspace / "config.yaml")["experiments"]
    # The removed runs' trainings and evaluations (one seed), nothing else.
    assert jobs["train"] == len(THROUGH_SLURM)
    assert jobs["evaluate"] == sum(len(experiments[name]["evaluations"]) for name in THROUGH_SLURM) > 0
    assert len(submitted) == len(set(submitted)) == jobs["train"] + jobs["evaluate"]
    # The other runs were not redone: their files are the copies of the local run's.
    kept = [path.relative_to(smoke_run) for path in smoke_run.glob("results/*/*/seed*/metrics.json")
            if path.parts[-3] not in THROUGH_SLURM]
    assert kept and all((workspace / path).stat().st_mtime == (smoke_run / path).stat().st_mtime
                        for path in kept)


def test_metrics_and_training_logs_equal_the_local_run(slurm_run, smoke_run):
    workspace, _ = slurm_run
    cluster, local = _metrics(workspace), _metrics(smoke_run)
    assert cluster and cluster.keys() == local.keys()
    for run, metrics in cluster.items():
        assert metrics == local[run], run
        log = Path(run).with_name("train_log.csv")
        assert _train_log(workspace / log) == _train_log(smoke_run / log), log
    evaluations = sorted(p.relative_to(smoke_run) for p in smoke_run.glob("results/*/*/seed*/*.json"))
    for path in evaluations:
        if path.name != "metrics.json":  # evaluations, gradient metrics: equal but for timings
            ours, theirs = (json.loads((root / path).read_text()) for root in (workspace, smoke_run))
            assert ({k: v for k, v in ours.items() if k not in TIMING_KEYS}
                    == {k: v for k, v in theirs.items() if k not in TIMING_KEYS}), path


def test_figures_equal_the_local_run(slurm_run, smoke_run):
    workspace, _ = slurm_run
    figures = sorted(p.relative_to(smoke_run) for p in smoke_run.glob("results/*/*.png"))
    assert len(figures) > 20
    for png in figures:
        assert (workspace / png).read_bytes() == (smoke_run / png).read_bytes(), png


# Generated files whose sentences are chosen by the verdicts (counts, lists of the claims not
# reproduced), so by a timing claim's verdict too; their claims are compared through claims.csv.
VERDICT_PROSE = {"claims_summary.tex", "discussion.tex"}


def _without_verdict_prose(text: str) -> str:
    """The PDF's text without the abstract (its outcome sentence), the claims summary and the
    closing Discussion: their words follow the verdicts (see VERDICT_PROSE)."""
    text = text[:text.index("Abstract")] + text[text.index("\nIntroduction\n"):]
    return text[:text.rindex("\nDiscussion\n")] + text[text.index("\nReferences\n"):]


def test_paper_equals_the_local_run_up_to_training_times(slurm_run, smoke_run):
    workspace, _ = slurm_run
    generated = sorted(p.relative_to(smoke_run) for p in smoke_run.glob("paper/generated/*.tex")
                       if p.name not in VERDICT_PROSE)
    assert generated
    for tex in generated:
        ours, theirs = (_without_times((root / tex).read_text()) for root in (workspace, smoke_run))
        assert ours == theirs, tex
    texts = [subprocess.run(["pdftotext", str(root / "paper" / "main.pdf"), "-"], check=True,
                            capture_output=True, text=True).stdout for root in (workspace, smoke_run)]
    # Pages: a verdict of another length may move a float by a page, no more.
    assert abs(texts[0].count("\f") - texts[1].count("\f")) <= 1
    # The same words; a float may land elsewhere when a time is wider, so not their order.
    words = [Counter(_without_times(_without_verdict_prose(text)).split()) for text in texts]
    assert sum(words[0].values()) > 2000 and words[0] == words[1]


# A longer run of one small experiment: 57 steps per epoch, so a signal lands mid-epoch.
LONGER_RUN = "experiments:\n  conv_simple:\n    training: {epochs: 4, batch_size: 16}\n"
LONGER_TARGET = "results/cifar10/conv_simple/seed0"


def _epochs_in_checkpoint(run: Path) -> int:
    import torch

    try:
        return len(torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)["records"])
    except (FileNotFoundError, RuntimeError, EOFError):
        return 0


def test_a_slurm_job_stopped_by_sigterm_is_retried_and_continues_mid_epoch(cluster, tmp_path_factory):
    """SIGTERM to the job's steps, as SLURM sends before the time limit (the train rule's
    sbatch --signal=TERM@N): the training checkpoints its step, the job fails, the profile's
    retry resubmits it, and it continues from that step to the result of an uninterrupted run."""
    local = make_workspace(tmp_path_factory.mktemp("longer_local"))
    (local / "longer.yaml").write_text(LONGER_RUN)
    straight = snakemake(local, f"{LONGER_TARGET}/metrics.json", "--profile", "profiles/smoke",
                         "--configfile", "config.yaml", "profiles/smoke/smoke.yaml", "longer.yaml")
    assert straight.returncode == 0, straight.stderr[-3000:]

    workspace = make_workspace(tmp_path_factory.mktemp("longer_slurm"))
    (workspace / "longer.yaml").write_text(LONGER_RUN)
    env = {**cluster, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{cluster['PATH']}"}
    job = subprocess.Popen([sys.executable, "-m", "snakemake", f"{LONGER_TARGET}/metrics.json",
                            *slurm_smoke_args("longer.yaml")], cwd=workspace, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 600
    while _epochs_in_checkpoint(workspace / LONGER_TARGET) < 1:
        assert job.poll() is None, job.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "no epoch checkpoint within 10 minutes"
        time.sleep(0.2)
    running = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i"], env=cluster, check=True,
                             capture_output=True, text=True).stdout.split()
    assert len(running) == 1
    # What sbatch --signal=TERM@N (cluster.stop_before_limit_s) does N seconds before the time
    # limit: SIGTERM to the job's steps, not to the batch script and its srun.
    subprocess.run(["scancel", "--signal=TERM", running[0]], env=cluster, check=True)
    output, _ = job.communicate(timeout=900)
    assert job.returncode == 0, output[-3000:]
    assert re.search(rf"SLURM-job '?{running[0]}'? failed", output), output[-3000:]
    slurm_log = next((workspace / "logs" / "slurm" / "rule_train").rglob(f"{running[0]}.log")).read_text()
    stop = load_config(workspace / "config.yaml")["cluster"]["stop_before_limit_s"]
    assert f"slurm_extra=--signal=TERM@{stop}" in slurm_log
    log = (workspace / "logs" / "train" / "cifar10" / "conv_simple" / "seed0.log").read_text()
    assert re.search(r"resuming in epoch 2/4 after step \d+/57", log), log[:2000]
    ours = json.loads((workspace / LONGER_TARGET / "metrics.json").read_text())
    theirs = json.loads((local / LONGER_TARGET / "metrics.json").read_text())
    assert {k: v for k, v in ours.items() if k not in TIMING_KEYS} == \
        {k: v for k, v in theirs.items() if k not in TIMING_KEYS}
    assert _train_log(workspace / LONGER_TARGET / "train_log.csv") == \
        _train_log(local / LONGER_TARGET / "train_log.csv")
