"""The log's by-eye claims as numbers: dead units and representation correlations
(unit_activity), hidden units' gradient stability on noise (hidden_noise_stability), the
train-test gap, their claims' verdicts from result files and their config errors."""

from __future__ import annotations

import json
import math
import re
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from tests.conftest import REPO
from tests.test_paper import build_context, write_results
from tests.test_view_usage import _run
from whitebox.cli import main
from whitebox.config import ConfigError, validate_config
from whitebox.evaluation.hidden_noise_stability import (
    centre_unit_gradients,
    conv_layers,
    hidden_noise_stability,
)
from whitebox.evaluation.unit_activity import correlation_summary, unit_activity
from whitebox.layers import SoftMaxPool
from whitebox.paper import PaperInputError


def _images(n: int = 5, size: int = 8) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(1, 256, (n, 3, size, size), dtype=torch.uint8, generator=generator)


def _two_dead_units() -> nn.Sequential:
    """conv1: channel 0 sums the (positive) pixels, channels 1 and 2 are a negative bias."""
    conv1 = nn.Conv2d(3, 3, 1)
    conv2 = nn.Conv2d(3, 4, 1)
    with torch.no_grad():
        conv1.weight.zero_()
        conv1.weight[0] = 1.0
        conv1.bias.copy_(torch.tensor([0.0, -1.0, -0.5]))
        conv2.weight.fill_(1.0)
        conv2.bias.zero_()
    return nn.Sequential(OrderedDict([
        ("conv1", conv1), ("act1", nn.GELU()), ("conv2", conv2), ("act2", nn.ReLU()),
        ("pool", nn.AdaptiveMaxPool2d(1)), ("flatten", nn.Flatten(1)), ("smpool", SoftMaxPool(2)),
    ]))


def test_units_that_never_fire_are_dead_per_layer():
    report = unit_activity(_two_dead_units(), _images(), batch_size=2)
    first, second = report["layers"]
    assert (first["layer"], first["layer_type"], first["n_units"], first["dead"]) == (
        "act1", "GELU", 3, 2)
    assert first["dead_share"] == pytest.approx(2 / 3)
    assert (second["layer"], second["dead"], second["dead_share"]) == ("act2", 0, 0.0)
    # The four units SoftMaxPool reads are the same signal (equal weights): correlation 1.
    representation = report["representation"]
    assert representation["layer"] == "smpool" and representation["n_units"] == 4
    assert representation["mean_abs_correlation"] == pytest.approx(1.0)
    assert representation["effective_rank"] == pytest.approx(1.0)
    assert report["n_images"] == 5


def test_representation_correlation_and_effective_rank_have_known_values():
    x = torch.tensor([1.0, -1.0, 1.0, -1.0])
    y = torch.tensor([1.0, 1.0, -1.0, -1.0])  # uncorrelated with x
    units = torch.stack([x, y, 3 * x + 2, torch.full((4,), 7.0)], dim=1)
    report = correlation_summary(units)
    # |corr| of (x, y), (x, 3x+2), (y, 3x+2): 0, 1, 0; the constant unit is left out.
    assert report["n_units"] == 4 and report["n_constant"] == 1
    assert report["mean_abs_correlation"] == pytest.approx(1 / 3)
    # Eigenvalues 2, 1, 0 of the correlation matrix: exp(entropy of (2/3, 1/3)).
    entropy = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert report["effective_rank"] == pytest.approx(math.exp(entropy))
    assert correlation_summary(units[:, 3:])["mean_abs_correlation"] is None


def test_linear_hidden_units_have_constant_gradients_so_stability_one():
    torch.manual_seed(0)
    linear = nn.Sequential(OrderedDict([("conv1", nn.Conv2d(3, 2, 3)), ("conv2", nn.Conv2d(2, 3, 3))]))
    noise = torch.rand(4, 3, 9, 9)
    gradients = centre_unit_gradients(linear, linear.conv1, noise, chunk_size=4)
    assert gradients.shape == (2, 4, 3, 9, 9)
    # A convolution's centre unit (3, 3 of its 7x7 map) has its kernel as gradient there.
    assert torch.allclose(gradients[1, 2, :, 3:6, 3:6], linear.conv1.weight[1])
    assert gradients[:, :, :, :3].abs().sum() == 0
    assert list(conv_layers(linear)) == ["conv1", "conv2"]
    assert [layer["noise_stability"] for layer in hidden_noise_stability(linear, noise)] == \
        pytest.approx([1.0, 1.0])


def test_batched_unit_gradients_match_one_backward_per_unit():
    torch.manual_seed(1)
    model = nn.Sequential(OrderedDict([("conv1", nn.Conv2d(3, 4, 3)), ("act1", nn.ReLU()),
                                       ("conv2", nn.Conv2d(4, 3, 3))]))
    noise = torch.rand(3, 3, 9, 9)
    batched = centre_unit_gradients(model, model.conv2, noise, chunk_size=5)  # uneven chunks
    for unit in range(3):
        inputs = noise.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(inputs)[:, unit, 2, 2].sum(), inputs)
        assert torch.allclose(batched[unit], grad)
    (_, hidden) = hidden_noise_stability(model, noise)
    assert hidden["layer"] == "conv2" and hidden["n_units"] == 3
    assert hidden["noise_stability"] < 1.0  # the ReLU makes the gradients input-dependent


def test_both_evaluations_run_from_the_command_line(tmp_path):
    model, data = _run(tmp_path, "positive_lenet", {"widths": (4, 8), "n_units": 6})
    for kind in ("unit_activity", "hidden_noise_stability"):
        out = tmp_path / "run" / f"{kind}.json"
        assert main(["evaluate", "--kind", kind, "--model", str(model), "--data", str(data),
                     "--out", str(out)]) == 0
        record = json.loads(out.read_text())
        assert record["evaluation"] == kind
    activity = json.loads((tmp_path / "run" / "unit_activity.json").read_text())["result"]
    assert [layer["layer"] for layer in activity["layers"]] == ["net.act1", "net.act2"]
    assert activity["representation"]["layer"] == "net.smpool"
    assert activity["representation"]["n_units"] == 6
    hidden = json.loads((tmp_path / "run" / "hidden_noise_stability.json").read_text())["result"]
    assert [layer["layer"] for layer in hidden["layers"]] == ["net.conv1", "net.conv2", "net.conv3"]
    assert hidden["layers"][0]["noise_stability"] == pytest.approx(1.0)  # a linear first layer
    assert hidden["n_noise"] == 8


# -- claims from result files ---------------------------------------------------------------
# Per experiment and seed: dead share of act1, representation |corr|, conv2 noise stability,
# eval-mode train accuracy (test accuracies: conj_disj 90.25/91.75, directional 93.5/94.7).
FAKE = {"conj_disj": {0: (0.25, 0.30, 0.40, 99.0), 1: (0.375, 0.32, 0.42, 99.5)},
        "directional": {0: (0.0, 0.50, 0.60, 95.0), 1: (0.0, 0.52, 0.62, 95.5)}}
CLAIMS = {"items": [
    {"experiment": "conj_disj", "text": "some units are dead", "metric": "dead_units",
     "relation": "higher", "value": 0},
    {"experiment": "conj_disj", "text": "more diverse", "metric": "representation_correlation",
     "relation": "lower", "than": "directional"},
    {"experiment": "conj_disj", "text": "poorer hidden units", "metric": "hidden_noise_stability",
     "layer": "net.conv2", "relation": "lower", "than": "directional"},
    {"experiment": "conj_disj", "text": "overfits less", "metric": "generalisation_gap",
     "relation": "lower", "than": "directional"},
]}


def _write_unit_results(paths: list[Path]) -> None:
    for path in paths:
        metrics = json.loads(path.read_text())
        name, seed = metrics["experiment"], metrics["seed"]
        dead, correlation, stability, train = FAKE[name][seed]
        results = {
            "unit_activity": {"n_images": 2000, "layers": [
                {"layer": "net.act1", "layer_type": "GELU", "n_units": 8, "dead": 8 * dead,
                 "dead_share": dead},
                {"layer": "net.act2", "layer_type": "GELU", "n_units": 16, "dead": 0,
                 "dead_share": 0.0}],
                "representation": {"layer": "net.smpool", "n_units": 120, "n_constant": 0,
                                   "mean_abs_correlation": correlation, "effective_rank": 30.0}},
            "hidden_noise_stability": {"n_noise": 8, "noise_std": 0.25, "layers": [
                {"layer": "net.conv1", "layer_type": "Conv2d", "n_units": 8, "noise_stability": 1.0},
                {"layer": "net.conv2", "layer_type": "PositiveConv2d", "n_units": 16,
                 "noise_stability": stability}]},
            "train_fit": {"n_train": 1000, "n_test": 400, "train_accuracy": train,
                          "test_accuracy": metrics["test_accuracy"],
                          "gap": train - metrics["test_accuracy"]},
        }
        for kind, result in results.items():
            (path.parent / f"{kind}.json").write_text(json.dumps({
                "evaluation": kind, "experiment": name, "seed": seed,
                "config_hash": metrics["config_hash"], "git_commit": "0123456789ab",
                "result": result}))


def test_unit_claims_get_verdicts_from_the_result_files(tmp_path):
    paths, figures = write_results(tmp_path)
    _write_unit_results(paths)
    context = build_context(paths, figures, tmp_path / "paper", claims=CLAIMS)
    rows = {row["text"]: row for row in context["claims"]}
    dead = rows["some units are dead"]
    assert dead["measured"]["mean"] == pytest.approx(0.3125) and dead["verdict"] == "reproduced"
    diverse = rows["more diverse"]
    assert diverse["difference"] == pytest.approx(0.31 - 0.51) and diverse["verdict"] == "reproduced"
    poorer = rows["poorer hidden units"]
    assert poorer["difference"] == pytest.approx(0.41 - 0.61) and poorer["verdict"] == "reproduced"
    gap = rows["overfits less"]
    # conj_disj: 99.0 - 90.25 and 99.5 - 91.75; directional: 95.0 - 93.5 and 95.5 - 94.7.
    assert gap["measured"]["mean"] == pytest.approx((8.75 + 7.75) / 2)
    assert gap["compared"]["mean"] == pytest.approx((1.5 + 0.8) / 2)
    assert gap["points"] and gap["verdict"] == "not reproduced"
    assert {row["metric_label"] for row in rows.values()} >= {
        "share of dead units", "train-test accuracy gap"}
    activity = {e["name"]: e for e in context["experiments"]}["conj_disj"]["evaluations"]
    assert activity["unit_activity"]["layers"][0]["dead_share"]["mean"] == pytest.approx(0.3125)


@pytest.mark.parametrize(("claim", "message"), [
    ({**CLAIMS["items"][2], "layer": "net.conv9"},
     "has no layer 'net.conv9'; valid: net.conv1, net.conv2"),
    (CLAIMS["items"][3], "needs its train_fit evaluation; add train_fit to its evaluations"),
])
def test_a_claim_without_its_layer_or_evaluation_is_one_line(tmp_path, claim, message):
    paths, figures = write_results(tmp_path)
    _write_unit_results(paths)
    for path in paths:
        (path.parent / "train_fit.json").unlink()
    with pytest.raises(PaperInputError, match=re.escape(message)):
        build_context(paths, figures, tmp_path / "paper", claims={"items": [claim]})


@pytest.mark.parametrize(("claim", "message"), [
    ({"experiment": "gumbel_simple_mix", "metric": "generalisation_gap", "than": "conv_mix"},
     "claims/items/0/than: unknown experiment 'conv_mix'"),
    ({"experiment": "positive_lenet", "metric": "dead_units", "value": 0},
     "claims/items/0/experiment: a dead_units claim needs the unit_activity evaluation of "
     "'positive_lenet'; add unit_activity to experiments/positive_lenet/evaluations"),
    ({"experiment": "norm_percentile", "metric": "representation_correlation", "than": "norm_dbn"},
     "claims/items/0/than: a representation_correlation claim needs the unit_activity "
     "evaluation of 'norm_dbn'"),
    ({"experiment": "positive_vgg4", "metric": "hidden_noise_stability",
      "than": "positive_lenet_cifar3"}, "a hidden_noise_stability claim needs layer"),
])
def test_bad_unit_claims_are_one_line_config_errors(claim, message):
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    raw["claims"]["items"] = [{"text": "a claim", "relation": "lower", **claim}]
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        validate_config(raw)
    assert "\n" not in str(error.value)


def test_the_repository_claims_name_their_evaluations_and_the_mixing_twin():
    config = validate_config(yaml.safe_load((REPO / "config.yaml").read_text()))
    twin, mix = config["experiments"]["conv_simple_mix"], config["experiments"]["gumbel_simple_mix"]
    assert twin["model"] == mix["model"] and twin["model_args"] == {"conv": "standard", "mixing": True}
    assert {key: value for key, value in twin["training"].items() if key != "tau"} == \
        {key: value for key, value in mix["training"].items() if key != "tau"}
    smoke = yaml.safe_load((REPO / "profiles" / "smoke" / "smoke.yaml").read_text())
    assert smoke["experiments"]["conv_simple_mix"]["training"]["epochs"] == 2
    metrics = {item["metric"] for item in config["claims"]["items"]}
    assert {"dead_units", "representation_correlation", "hidden_noise_stability",
            "generalisation_gap"} <= metrics


def test_train_fit_counts_both_splits_in_eval_mode(tmp_path):
    """The gap is measured with the same predictions as the test accuracy: eval mode, no
    augmentation, on both splits (4 train and 6 test images of two classes)."""
    from whitebox.data.dataset import load_prepared
    from whitebox.evaluation.accuracy import predict
    from whitebox.models import classifier_from_checkpoint

    model, data = _run(tmp_path, "positive_lenet", {"widths": (4, 8), "n_units": 6})
    out = tmp_path / "run" / "train_fit.json"
    assert main(["evaluate", "--kind", "train_fit", "--model", str(model), "--data", str(data),
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())["result"]
    classifier = classifier_from_checkpoint(torch.load(model, weights_only=False))
    dataset = load_prepared(data)
    expected = {split: 100.0 * float((predict(classifier, getattr(dataset, split).images)
                                      == getattr(dataset, split).labels).float().mean())
                for split in ("train", "test")}
    assert (result["n_train"], result["n_test"]) == (4, 6)
    assert result["train_accuracy"] == pytest.approx(expected["train"])
    assert result["test_accuracy"] == pytest.approx(expected["test"])
    assert result["gap"] == pytest.approx(expected["train"] - expected["test"])
    assert result["train_accuracy"] in {0.0, 25.0, 50.0, 75.0, 100.0}
