"""The figures across experiments are Snakemake targets of the smoke profile (dry run in a
fresh copy of the workspace), also with the GPU stage left out."""

from __future__ import annotations

import pytest

from tests.integration.workspace import make_workspace, snakemake

TARGETS = ["results/summary/accuracy_vs_gradient_quality.png",
           "results/cifar2/gradient_comparison.png", "results/cifar3/gradient_comparison.png"]


@pytest.mark.parametrize("gpu_experiments", ["run", "skip"])
def test_comparison_figures_are_targets(tmp_path, gpu_experiments):
    workspace = make_workspace(tmp_path)
    result = snakemake(workspace, "--profile", "profiles/smoke", "-n", *TARGETS,
                       "--config", f"gpu_experiments={gpu_experiments}", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "rule accuracy_quality:" in output
    assert output.count("rule gradient_comparison:") == 2
    for stage in ("'LeNet, unconstrained weights' results/cifar2/lenet_unconstrained/seed0",
                  "'Positive LeNet, BN affine off' results/cifar2/positive_lenet/seed0"):
        assert f"--stage {stage}/model.pt" in output
    assert ("cub_resnet34/seed0/metrics.json" in output) == (gpu_experiments == "run")
