"""The view_usage evaluation (which view wins the maximum of a view layer), its summary over
seeds and its table in the paper."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.conftest import one_error_line
from whitebox.cli import main
from whitebox.data.dataset import Dataset, Split, save_dataset
from whitebox.evaluation.kinds import EVALUATION_KINDS
from whitebox.evaluation.view_usage import view_layers, view_usage
from whitebox.io import save_torch
from whitebox.layers import AugMax, PerspectiveConv2d, ScaleConv2d
from whitebox.models import build_classifier
from whitebox.paper.evaluations import summarize_evaluations
from whitebox.paper.latex import latex_environment

CLASSES = ["airplane", "automobile"]
MEAN, STD = [0.5] * 3, [0.25] * 3
TINY = {"widths": (4, 8), "n_units": 6}
TEMPLATES = Path(__file__).resolve().parents[1] / "paper" / "templates"


def _images(n: int = 6, low: int = 1, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(low, 256, (n, 3, 12, 12), dtype=torch.uint8, generator=generator)


def test_a_dominating_view_wins_every_maximum():
    layer = ScaleConv2d(3, 4, 3, scales=(1.0, 0.8, 1.25), positive=True)
    weight = layer.weight.detach()
    layer.kernel_views = lambda: torch.stack([2 * weight, weight, 0.5 * weight])
    (report,) = view_usage(nn.Sequential(layer), _images())  # positive pixels, positive kernels
    assert [view["share"] for view in report["views"]] == [1.0, 0.0, 0.0]
    assert [view["label"] for view in report["views"]] == ["scale 1", "scale 0.8", "scale 1.25"]
    assert report["identity_share"] == 1.0 and report["tie_share"] == 0.0
    assert report["layer"] == "0" and report["layer_type"] == "ScaleConv2d"
    assert report["n_maxima"] == 6 * 4 * 10 * 10


def test_exact_ties_are_split_among_the_views():
    layer = ScaleConv2d(3, 2, 3, scales=(0.8, 1.0, 1.25), positive=True)
    (report,) = view_usage(nn.Sequential(layer), torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
    assert [view["share"] for view in report["views"]] == pytest.approx([1 / 3] * 3)
    assert report["tie_share"] == 1.0 and report["identity_share"] == pytest.approx(1 / 3)


@pytest.mark.parametrize(("model", "args", "layer_type", "n_views", "identity"), [
    ("invariant_lenet", {"part": "scale"}, "ScaleConv2d", 3, "scale 1"),
    ("invariant_lenet", {"part": "perspective", "n_views": 2}, "PerspectiveConv2d", 3, "identity"),
    ("invariant_lenet", {"part": "projective"}, "ProjectiveConv2d", 8, None),
    ("augmax_lenet", {"angles": (0.0, 15.0), "hflip": True}, "AugMax", 4, "identity"),
])
def test_every_view_layer_type_gives_one_entry(model, args, layer_type, n_views, identity):
    torch.manual_seed(0)
    classifier = build_classifier(model, 2, MEAN, STD, image_size=32, **TINY, **args)
    reports = view_usage(classifier, _images(4, low=0).repeat(1, 1, 3, 3)[..., :32, :32])
    assert [(r["layer_type"], len(r["views"])) for r in reports] == [(layer_type, n_views)]
    (report,) = reports
    assert sum(view["share"] for view in report["views"]) == pytest.approx(1.0)
    assert all(0.0 <= view["share"] <= 1.0 for view in report["views"])
    assert [v["label"] for v in report["views"] if v["identity"]] == ([identity] if identity else [])
    assert (report["identity_share"] is None) == (identity is None)
    assert ("perspective" in report) == (layer_type == "PerspectiveConv2d")


def test_augmax_with_the_identity_alone_takes_no_maximum():
    plain = build_classifier("augmax_lenet", 2, MEAN, STD, image_size=32, **TINY)
    assert view_layers(plain) == {}
    assert isinstance(plain.net.augmax, AugMax)


def test_perspective_displacement_is_measured_from_the_initial_values():
    layer = PerspectiveConv2d(3, 4, 5, n_views=2, spread=0.1, positive=True)
    (report,) = view_usage(nn.Sequential(layer), _images(2))
    assert report["perspective"] == {"spread": 0.1, "mean_displacement": 0.0, "max_displacement": 0.0}
    with torch.no_grad():
        layer.perspective[1, 0] += torch.tensor([0.03, 0.04])  # moved by 0.05
    (report,) = view_usage(nn.Sequential(layer), _images(2))
    assert report["perspective"]["max_displacement"] == pytest.approx(0.05)
    assert report["perspective"]["mean_displacement"] == pytest.approx(0.05 / 8)


# -- command line ---------------------------------------------------------------------------
def _run(tmp_path: Path, model: str, model_args: dict, seed: int = 0) -> tuple[Path, Path]:
    """A tiny untrained model saved the way training saves model.pt, and prepared data."""
    torch.manual_seed(seed)
    classifier = build_classifier(model, 2, MEAN, STD, image_size=32, **model_args)
    spec = {"name": "semantic_scale", "dataset": "cifar2", "base_dataset": "cifar10",
            "source": {"source": "synthetic"}, "classes": CLASSES, "model": model,
            "model_args": model_args, "training": {}, "pretrained": None}
    path = tmp_path / "run" / "model.pt"
    save_torch({"state_dict": classifier.state_dict(), "spec": spec, "classes": CLASSES,
                "mean": MEAN, "std": STD, "image_size": 32}, path)
    generator = torch.Generator().manual_seed(1)

    def split(n: int) -> Split:
        images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator)
        return Split(images, torch.arange(n, dtype=torch.int64) % 2)

    data = tmp_path / "tensors.pt"
    save_dataset(Dataset("cifar10", CLASSES, split(4), split(6)), data, {"source": "synthetic"})
    return path, data


def test_view_usage_command_writes_the_json(tmp_path):
    model, data = _run(tmp_path, "invariant_lenet", {**TINY, "part": "scale"})
    out = tmp_path / "run" / "view_usage.json"
    assert not EVALUATION_KINDS["view_usage"].inh_only
    assert main(["evaluate", "--kind", "view_usage", "--model", str(model), "--data", str(data),
                 "--seed", "3", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert (record["evaluation"], record["experiment"], record["seed"]) == ("view_usage",
                                                                            "semantic_scale", 3)
    result = record["result"]
    assert result["n_images"] == 6
    (layer,) = result["layers"]
    assert layer["layer"] == "net.conv2" and layer["layer_type"] == "ScaleConv2d"
    assert sum(view["share"] for view in layer["views"]) == pytest.approx(1.0)


def test_a_model_without_view_layers_is_one_line(tmp_path, capsys):
    model, data = _run(tmp_path, "invariant_lenet", {**TINY, "part": "plain"})
    out = tmp_path / "run" / "view_usage.json"
    assert main(["evaluate", "--kind", "view_usage", "--model", str(model), "--data", str(data),
                 "--out", str(out)]) == 1
    line = one_error_line(capsys)
    assert "needs a layer that takes a maximum over views" in line and "'semantic_scale'" in line
    assert not out.exists()


# -- summary and paper ----------------------------------------------------------------------
def _result(shares: list[float], moved: float) -> dict:
    labels = ["identity", "perspective 1", "perspective 2"]
    return {"n_images": 10, "layers": [{
        "layer": "net.conv2", "layer_type": "PerspectiveConv2d",
        "views": [{"label": label, "share": share, "identity": index == 0}
                  for index, (label, share) in enumerate(zip(labels, shares, strict=True))],
        "identity_share": shares[0], "tie_share": 0.0, "n_maxima": 1000,
        "perspective": {"spread": 0.1, "mean_displacement": moved, "max_displacement": 2 * moved}}]}


def test_view_usage_summary_is_mean_and_std_in_percent():
    summary = summarize_evaluations("semantic_perspective", [
        (0, {"view_usage": _result([0.9, 0.1, 0.0], 0.01)}),
        (1, {"view_usage": _result([0.7, 0.2, 0.1], 0.03)})])["view_usage"]
    assert summary["seeds"] == [0, 1] and summary["n_images"] == 10
    (layer,) = summary["layers"]
    assert [view["label"] for view in layer["views"]] == ["identity", "perspective 1", "perspective 2"]
    identity = layer["views"][0]["percent"]
    assert identity["mean"] == pytest.approx(80.0) and identity["std"] == pytest.approx(14.1421, 1e-4)
    assert identity["per_seed"] == pytest.approx([90.0, 70.0])
    assert layer["identity_percent"]["mean"] == pytest.approx(80.0)
    assert layer["tie_percent"]["mean"] == 0.0
    assert layer["perspective"]["spread"] == 0.1
    assert layer["perspective"]["max_displacement"]["mean"] == pytest.approx(0.04)


def _table(experiments: list[dict]) -> str:
    return latex_environment(TEMPLATES).get_template("view_usage.tex.j2").render(
        experiments=experiments)


def test_view_usage_table():
    assert "\\emph{(No view usage was evaluated.)}" in _table([{"evaluations": {}, "title": "x"}])
    summary = summarize_evaluations("semantic_perspective", [
        (0, {"view_usage": _result([0.9, 0.1, 0.0], 0.01)})])
    table = _table([{"evaluations": {}, "title": "Plain"},
                    {"evaluations": summary, "title": "Perspective parts", "name": "p", "macro": "P"}])
    assert "\\newcommand{\\viewusagetable}" in table and "\\begin{tabular}" in table
    assert "Plain" not in table and "Perspective parts" in table
    assert "identity: 90.0; perspective 1: 10.0; perspective 2: 0.0" in table
    assert "mean 0.010" in table and "max 0.020" in table and "\\texttt{net.conv2}" in table
