"""The unit_grid figure (every unit on one noise image, by class) and the kernel_views figure
(an invariance layer's kernels under each view): gradients, renderers, CLI and config."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.conftest import one_error_line, png_info
from whitebox.cli import main
from whitebox.config import ConfigError, figure_files, validate_config
from whitebox.data.dataset import Dataset, Split, save_dataset
from whitebox.explain.noise import all_unit_gradients_on_noise, count_units, unit_gradients_on_noise
from whitebox.figures.kernels import save_kernel_views_figure, strongest_kernels
from whitebox.figures.kinds import FIGURE_KINDS
from whitebox.figures.units import UnitGridRow, save_unit_grid_figure, unit_class_blocks
from whitebox.io import save_torch
from whitebox.models import build_classifier


# -- all_unit_gradients_on_noise ------------------------------------------------------------
def _tiny_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.GELU(), nn.Conv2d(4, 6, 3),
                         nn.Flatten(1), nn.Linear(6 * 4 * 4, 5)).double()


@pytest.mark.parametrize(("layer", "n_units"), [("3", 6), ("5", 5)])  # conv (max-pooled), linear
@pytest.mark.parametrize("chunk_size", [256, 2])
def test_all_unit_gradients_equal_per_unit_autograd(layer, n_units, chunk_size):
    model = _tiny_model().train()  # BatchNorm in train mode would couple the copies: eval is used
    grads = all_unit_gradients_on_noise(model, layer, (2, 8, 8), seed=4, chunk_size=chunk_size)
    assert grads.shape == (n_units, 2, 8, 8) and grads.dtype == torch.float64
    one_by_one = unit_gradients_on_noise(model, layer, list(range(n_units)), 1, (2, 8, 8), seed=4)
    torch.testing.assert_close(grads, one_by_one[:, 0])
    assert model.training  # mode restored
    assert count_units(model, layer, (2, 8, 8)) == n_units


def test_all_unit_gradients_of_inh_slots():
    model = build_classifier("inh", 3, [0.5], [0.25], image_size=6).double()
    torch.manual_seed(0)
    model.net.inh.add_slots(torch.randn(6, 36, dtype=torch.float64), torch.arange(6) % 3)
    n_slots = model.net.inh.weight.shape[0]
    grads = all_unit_gradients_on_noise(model.eval(), "net.inh", (1, 6, 6), seed=2, chunk_size=4)
    assert grads.shape == (n_slots, 1, 6, 6) and n_slots > 4
    torch.testing.assert_close(grads, unit_gradients_on_noise(model, "net.inh", range(n_slots), 1,
                                                              (1, 6, 6), seed=2)[:, 0])


# -- renderers ------------------------------------------------------------------------------
def test_units_split_into_equal_class_blocks():
    assert unit_class_blocks(180, 3) == [range(0, 60), range(60, 120), range(120, 180)]
    assert unit_class_blocks(2, 2) == [range(0, 1), range(1, 2)]
    for n_units, n_classes in ((7, 3), (2, 3), (4, 0)):
        with pytest.raises(ValueError, match="equal per-class blocks"):
            unit_class_blocks(n_units, n_classes)


def test_unit_grid_figure_writes_one_png_with_its_description(tmp_path):
    rows = [UnitGridRow("Aug-max", torch.randn(60, 3, 8, 8), ["plane", "car", "bird"]),
            UnitGridRow("Baseline", torch.randn(30, 3, 8, 8), ["plane", "car", "bird"])]
    save_unit_grid_figure(rows, tmp_path / "grid.png", title="units", info={"noise_seed": 3})
    assert png_info(tmp_path / "grid.png") == {"noise_seed": 3}
    with pytest.raises(ValueError, match="59 units do not split into 3"):
        save_unit_grid_figure([UnitGridRow("x", torch.randn(59, 1, 8, 8), ["a", "b", "c"])],
                              tmp_path / "bad.png")
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]


def test_kernel_views_pick_the_largest_kernels_and_share_a_scale(tmp_path):
    views = torch.randn(4, 10, 2, 3, 3) * 0.1
    views[:, 7] *= 30
    views[:, 2] *= 20
    assert strongest_kernels(views, 3)[:2] == [7, 2]
    assert len(strongest_kernels(views, 50)) == 10
    kernels = save_kernel_views_figure(views, ["identity", "a", "b", "c"], tmp_path / "grey.png",
                                       n_kernels=3, info={"layer": "net.conv2"})
    info = png_info(tmp_path / "grey.png")
    assert info == {"layer": "net.conv2", "kernels": kernels, "views": ["identity", "a", "b", "c"],
                    "perspective": False, "rgb": False, "nonnegative": False, "view_shares": None}
    positive = views.abs()
    save_kernel_views_figure(positive, ["identity", "perspective 1", "perspective 2", "c"],
                             tmp_path / "positive.png", n_kernels=3,
                             view_shares=[0.7, 0.1, 0.2, 0.0], perspective=torch.randn(10, 3, 2))
    info = png_info(tmp_path / "positive.png")
    assert info["nonnegative"] is True and info["view_shares"] == [0.7, 0.1, 0.2, 0.0]
    rgb = torch.randn(3, 5, 3, 5, 5)
    save_kernel_views_figure(rgb, ["0", "1", "2"], tmp_path / "rgb.png", n_kernels=2,
                             perspective=torch.randn(5, 2, 2))
    info = png_info(tmp_path / "rgb.png")
    assert info["rgb"] is True and info["perspective"] is True and len(info["kernels"]) == 2
    with pytest.raises(ValueError, match="2 view labels for 3 views"):
        save_kernel_views_figure(rgb, ["0", "1"], tmp_path / "bad.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grey.png", "positive.png", "rgb.png"]


# -- command line ---------------------------------------------------------------------------
def _checkpoint(path: Path, n_classes: int, seed: int, name: str) -> Path:
    """A (untrained) directional model saved the way training saves model.pt."""
    torch.manual_seed(seed)
    mean, std = [0.5] * 3, [0.25] * 3
    model = build_classifier("directional", n_classes, mean, std, image_size=32)
    classes = ["airplane", "automobile", "bird"][:n_classes]
    spec = {"name": name, "title": name.title(), "model": "directional", "model_args": {},
            "classes": None}
    save_torch({"state_dict": model.state_dict(), "spec": spec, "classes": classes, "mean": mean,
                "std": std, "image_size": 32}, path)
    return path


def test_unit_grid_command_draws_both_models(tmp_path):
    model = _checkpoint(tmp_path / "a" / "model.pt", 3, 0, "augmax")
    baseline = _checkpoint(tmp_path / "b" / "model.pt", 3, 1, "baseline")
    out = tmp_path / "aug_module.png"
    assert main(["figure", "unit_grid", "--model", str(model), "--title", "Augmax", "--layer",
                 "net.conv2", "--compare-model", str(baseline), "--compare-title", "Baseline",
                 "--compare-layer", "net.amp1", "--noise-seed", "2",
                 "--out", str(out)]) == 0
    info = png_info(out)
    assert info["noise_seed"] == 2
    assert [(r["title"], r["layer"], r["n_units"], r["units_per_class"]) for r in info["rows"]] == [
        ("Augmax", "net.conv2", 120, 40), ("Baseline", "net.amp1", 120, 40)]


def test_unit_grid_command_errors_are_one_line(tmp_path, capsys):
    two = _checkpoint(tmp_path / "two" / "model.pt", 2, 0, "two")
    out = tmp_path / "u.png"
    assert main(["figure", "unit_grid", "--model", str(two), "--layer", "normalize", "--out", str(out)]) == 1
    assert "layer 'normalize'" in (line := one_error_line(capsys)) and "3 units do not split into 2" in line
    assert main(["figure", "unit_grid", "--model", str(two), "--layer", "net.nope", "--out", str(out)]) == 1
    assert "model has no layer 'net.nope'" in one_error_line(capsys)
    assert main(["figure", "unit_grid", "--model", str(two), "--layer", "net.conv2", "--compare-model",
                 str(tmp_path / "missing.pt"), "--out", str(out)]) == 1
    assert "no trained model at" in one_error_line(capsys)
    assert not out.exists()


def _invariant_checkpoint(path: Path, part_args: dict) -> Path:
    """An untrained invariant LeNet (scale or perspective views) saved as training saves it."""
    torch.manual_seed(0)
    mean, std = [0.5] * 3, [0.25] * 3
    model = build_classifier("invariant_lenet", 2, mean, std, image_size=32, **part_args)
    spec = {"name": "views", "title": "Views", "model": "invariant_lenet", "model_args": part_args,
            "classes": None}
    save_torch({"state_dict": model.state_dict(), "spec": spec, "classes": ["airplane", "automobile"],
                "mean": mean, "std": std, "image_size": 32}, path)
    return path


@pytest.mark.parametrize("part_args", [{"part": "scale", "scales": [0.8, 1.0, 1.25]},
                                       {"part": "perspective", "n_views": 2, "spread": 0.1}])
def test_kernel_views_command(tmp_path, part_args):
    """The figure of a real view layer, with the share of maxima each view wins on test images."""
    model = _invariant_checkpoint(tmp_path / "model.pt", part_args)
    generator = torch.Generator().manual_seed(1)
    split = Split(torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=generator),
                  torch.tensor([0, 1, 0, 1, 1, 0]))
    save_dataset(Dataset("cifar2", ["airplane", "automobile"], split, split), tmp_path / "tensors.pt",
                 {"source": "synthetic"})
    out = tmp_path / "views.png"
    assert main(["figure", "kernel_views", "--model", str(model), "--data", str(tmp_path / "tensors.pt"),
                 "--title", "Views", "--layer", "net.conv2", "--n-kernels", "3",
                 "--out", str(out)]) == 0
    info = png_info(out)
    perspective = part_args["part"] == "perspective"
    assert info["layer"] == "net.conv2" and len(info["kernels"]) == 3
    assert info["layer_type"] == ("PerspectiveConv2d" if perspective else "ScaleConv2d")
    assert info["perspective"] is perspective and info["n_test_images"] == 6
    assert len(info["view_shares"]) == len(info["views"])
    assert sum(info["view_shares"]) == pytest.approx(1.0)


def test_kernel_views_of_a_plain_convolution_is_one_line(tmp_path, capsys):
    model = _checkpoint(tmp_path / "model.pt", 2, 0, "plain")
    status = main(["figure", "kernel_views", "--model", str(model), "--data", "unused.pt",
                   "--layer", "net.conv2", "--out", str(tmp_path / "k.png")])
    assert status == 1
    line = one_error_line(capsys)
    assert "layer 'net.conv2' is Conv2d" in line and "kernel_views()" in line
    assert not (tmp_path / "k.png").exists()


# -- config ---------------------------------------------------------------------------------
def _config() -> dict:
    three = {"source": "synthetic", "classes": ["a", "b", "c"]}
    return {
        "datasets": {"three": three, "two": {"source": "synthetic", "classes": ["a", "b"]}},
        "experiments": {
            "augmax": {"dataset": "three", "model": "directional",
                       "figures": {"unit_grid": {"file": "aug_module", "layer": "net.augmax",
                                                 "compare": "baseline"},
                                   "kernel_views": {"layer": "net.conv2"}}},
            "baseline": {"dataset": "three", "model": "directional"},
            "binary": {"dataset": "two", "model": "directional"},
        },
    }


def test_new_figure_kinds_validate_with_defaults():
    config = validate_config(_config())
    figures = config["experiments"]["augmax"]["figures"]
    assert figures["unit_grid"]["noise_seed"] == 0 and figures["kernel_views"]["n_kernels"] == 6
    assert figure_files(config) == {"results/three/aug_module.png": ("augmax", "unit_grid"),
                                    "results/three/augmax_kernel_views.png": ("augmax", "kernel_views")}
    assert {"unit_grid", "kernel_views"} <= set(FIGURE_KINDS)


@pytest.mark.parametrize(("change", "message"), [
    ({"compare": "nope"}, "unit_grid/compare: 'nope' is not another experiment; valid: baseline, binary"),
    ({"compare": "augmax"}, "'augmax' is not another experiment"),
    ({"compare": "binary"}, "'binary' has 2 classes"),
    ({"layer": None}, "figures/unit_grid: 'layer' is a required property"),
    ({"colour": "red"}, "'colour' was unexpected"),
])
def test_bad_unit_grid_is_one_line_naming_the_key(change, message):
    config = copy.deepcopy(_config())
    grid = config["experiments"]["augmax"]["figures"]["unit_grid"]
    grid.update(change)
    if grid["layer"] is None:
        del grid["layer"]
    with pytest.raises(ConfigError, match=message) as error:
        validate_config(config)
    assert "\n" not in str(error.value)


def test_kernel_views_needs_a_layer():
    config = _config()
    del config["experiments"]["augmax"]["figures"]["kernel_views"]["layer"]
    with pytest.raises(ConfigError, match="figures/kernel_views: 'layer' is a required property"):
        validate_config(config)
