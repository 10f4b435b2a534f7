"""The figures across experiments: accuracy against gradient quality (points, pairs, drawing)
and the gradient comparison of several stages (images, signed display, drawing, command)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import png_info
from tests.test_unit_grid_kernel_views import _checkpoint
from whitebox.cli import main
from whitebox.data.dataset import Dataset, Split, save_dataset
from whitebox.explain.gradients import to_signed_display
from whitebox.figures.gradient_comparison import comparison_images
from whitebox.figures.quality_plot import point_key
from whitebox.figures.quality_points import NO_FAMILY, load_runs, quality_plot


def _run(root: Path, experiment: str, dataset: str, seed: int, accuracy: float,
         alignment: float | None = 0.3) -> Path:
    """A run directory with a metrics.json and (unless ``alignment`` is None) its gradient
    metrics, as training and the gradient_metrics rule write them."""
    run = root / dataset / experiment / f"seed{seed}"
    run.mkdir(parents=True)
    metrics = {"experiment": experiment, "dataset": dataset, "seed": seed, "test_accuracy": accuracy,
               "per_class_accuracy": {}, "classes": ["a", "b"], "epochs": 1, "train_images": 4,
               "test_images": 2, "n_parameters": 1, "wall_time_s": 1.0, "device": "cpu",
               "device_name": "cpu", "config_hash": f"h-{experiment}", "git_commit": "x",
               "versions": {}, "spec": {"name": experiment, "dataset": dataset,
                                        "base_dataset": dataset, "source": {"source": "synthetic"},
                                        "model": "m", "training": {}}}
    (run / "metrics.json").write_text(json.dumps(metrics))
    if alignment is not None:
        result = {"alignment": alignment, "noise_stability": alignment / 2}
        (run / "gradient_metrics.json").write_text(json.dumps(
            {"experiment": experiment, "seed": seed, "config_hash": f"h-{experiment}",
             "result": result}))
    return run / "metrics.json"


def test_points_average_seeds_and_pairs_join_twins_of_one_dataset(tmp_path):
    paths = [_run(tmp_path, "base", "cifar2", 0, 80.0, 0.2), _run(tmp_path, "base", "cifar2", 1, 90.0, 0.4),
             _run(tmp_path, "variant", "cifar2", 0, 70.0, 0.5),
             _run(tmp_path, "other", "cifar3", 0, 60.0, 0.1),
             _run(tmp_path, "ungraded", "cifar3", 0, 50.0, None),
             _run(tmp_path, "lone", "cifar3", 0, 55.0, 0.3),
             _run(tmp_path, "extra", "cifar3", 0, 65.0, 0.3)]
    presentation = {
        "base": {"title": "Base", "family": "positive", "finding": None},
        "variant": {"title": "Variant", "family": None,
                    "finding": {"text": "x", "relation": "lower", "than": "base"}},
        "other": {"title": "Other", "finding": {"text": "x", "relation": "lower", "than": "base"}},
    }
    claims = {"items": [{"experiment": "variant", "than": "base", "metric": "alignment"},  # again
                        {"experiment": "lone", "than": "other", "metric": "alignment"},
                        {"experiment": "lone", "value": 0.5, "metric": "alignment"}]}
    plot = quality_plot(load_runs(paths), presentation, claims)
    assert list(plot.points) == ["cifar3", "cifar2"]  # most points first; "ungraded" is left out
    base, variant = plot.points["cifar2"]
    assert (base.family, variant.family) == ("positive", NO_FAMILY)
    assert base.accuracy.mean == pytest.approx(85.0) and base.accuracy.n == 2
    assert base.accuracy.std == pytest.approx(7.0710678)
    assert base.metrics["alignment"].mean == pytest.approx(0.3)
    assert base.metrics["noise_stability"].std == pytest.approx(0.0707107, rel=1e-5)
    assert variant.accuracy.std == 0.0 and variant.accuracy.n == 1
    assert [p.experiment for p in plot.points["cifar3"]] == ["other", "lone", "extra"]
    # other -> base spans two datasets; the claim variant <- base repeats the finding.
    assert plot.pairs == [("base", "variant"), ("other", "lone")]
    assert plot.info()["points"] == {"cifar3": 3, "cifar2": 2}
    assert plot.families() == ["positive", NO_FAMILY]


def test_accuracy_quality_command_draws_every_dataset(tmp_path):
    paths = [_run(tmp_path, name, dataset, 0, accuracy, alignment)
             for name, dataset, accuracy, alignment in [
                 ("a", "cifar2", 90.0, 0.3), ("b", "cifar2", 80.0, 0.4), ("c", "mnist", 97.0, 0.2),
                 ("d", "mnist", 95.0, 0.1), ("lonely", "mnist04", 99.0, 0.2)]]
    presentation = {"b": {"family": "gumbel", "finding": {"than": "a"}}}
    out = tmp_path / "quality.png"
    assert main(["compare", "accuracy-quality", "--metrics", *map(str, paths),
                 "--presentation", json.dumps(presentation), "--target-accuracy", "95",
                 "--out", str(out)]) == 0
    info = png_info(out)
    # A dataset with a single stage compares nothing and gets no panel.
    assert info["datasets"] == ["cifar2", "mnist"] and info["pairs"] == [["a", "b"]]
    assert info["target_accuracy"] == 95


def test_signed_display_puts_zero_at_grey():
    gradients = torch.tensor([[[[-2.0, 0.0], [1.0, 2.0]]], [[[0.0, 0.0], [0.0, 0.0]]]])
    shown = to_signed_display(gradients)
    assert shown[0].flatten().tolist() == [0.0, 0.5, 0.75, 1.0]
    assert torch.equal(shown[1], torch.full_like(shown[1], 0.5))


def test_comparison_images_are_test_images_then_the_same_noise():
    test = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    images = comparison_images(test, n_images=3, n_noise=2, noise_seed=4)
    assert images.shape == (5, 3, 8, 8) and images.min() >= 0 and images.max() <= 1
    torch.testing.assert_close(images[:3], test[:3].float() / 255)
    torch.testing.assert_close(images[3:], comparison_images(test, 1, 2, 4)[1:])


def test_gradient_comparison_command_draws_each_stage(tmp_path):
    generator = torch.Generator().manual_seed(3)
    split = Split(torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=generator),
                  torch.tensor([0, 1, 0, 1, 1, 0]))
    save_dataset(Dataset("cifar2", ["airplane", "automobile"], split, split), tmp_path / "tensors.pt",
                 {"source": "synthetic"})
    first = _checkpoint(tmp_path / "a" / "model.pt", 2, 0, "first")
    second = _checkpoint(tmp_path / "b" / "model.pt", 2, 1, "second")
    out = tmp_path / "comparison.png"
    assert main(["compare", "gradients", "--stage", "First stage", str(first), "--stage",
                 "Second", str(second), "--data", str(tmp_path / "tensors.pt"), "--n-images", "3",
                 "--out", str(out)]) == 0
    assert png_info(out) == {"stages": ["First stage", "Second"], "classes": ["airplane", "automobile"],
                             "n_images": 3, "n_noise": 2, "noise_seed": 0}


def test_points_are_numbered_per_dataset_and_the_key_names_them():
    key = point_key({"cifar2": {"conj_disj": 1, "directional": 2}, "mnist": {"mlp_mnist": 1}})
    assert key == ["cifar2: 1 conj_disj, 2 directional", "mnist: 1 mlp_mnist"]
    long = point_key({"cifar3": {f"experiment_{i}": i for i in range(1, 30)}})
    assert len(long) > 1 and all(len(line) <= 150 for line in long)
    assert long[1].startswith("    ")
