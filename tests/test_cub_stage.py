"""The CUB stage end to end on CPU through the CLI: a fake CUB tree in a data mirror, pretrained
backbone weights from the mirror, a prototype network trained with warm-up, joint epochs, push and
last-layer refit, and its prototype_parts figure; plus the one-line errors for missing weights."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
import torch
import torchvision

from tests.conftest import REPO, one_error_line
from tests.fake_cub import write_fake_cub
from whitebox.cli import main
from whitebox.config import experiment_spec, load_config

UNREACHABLE = "http://127.0.0.1:9/weights.pth"


def resnet34_weights(folder) -> str:
    """A (random) torchvision ResNet34 state dict saved under a torch-hub name whose hex is
    the file's own sha256 prefix, as the published file's is; returns the name."""
    torch.manual_seed(0)
    tmp = folder / "resnet34.tmp"
    torch.save(torchvision.models.resnet34().state_dict(), tmp)
    name = f"resnet34-{hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]}.pth"
    tmp.rename(folder / name)
    return name


@pytest.fixture(scope="module")
def cub_setup(tmp_path_factory):
    """A mirror with a fake CUB tree and ResNet34 weights, and the prepared 64x64 tensors."""
    root = tmp_path_factory.mktemp("cub")
    mirror = root / "mirror"
    write_fake_cub(mirror, n_classes=3, train_per_class=6, test_per_class=2)
    weights = resnet34_weights(mirror)
    data = root / "data" / "cub200" / "tensors.pt"
    source = {"source": "cub", "size": 64}
    assert main(["prepare-data", "--dataset", "cub200", "--source", json.dumps(source),
                 "--root", str(data.parent), "--out", str(data), "--mirror", str(mirror),
                 "--workers", "2"]) == 0
    return {"mirror": mirror, "weights": weights, "data": data, "source": source}


def train_args(setup, out_dir, experiment: str, pretrained: dict | None, **model_args) -> list[str]:
    base = experiment_spec(load_config(REPO / "config.yaml"), experiment)
    spec = dataclasses.replace(
        base, source=setup["source"], pretrained=pretrained,
        model_args={**base.model_args, **model_args},
        training={**base.training, "epochs": 2, "batch_size": 9, "eval_batch_size": 4})
    return ["train", "--spec", spec.to_json(), "--seed", "0", "--data", str(setup["data"]),
            "--out-dir", str(out_dir), "--mirror", str(setup["mirror"])]


def test_prototype_network_trains_on_a_fake_cub_tree_with_mirror_weights(cub_setup, tmp_path):
    pretrained = {"name": "resnet34_imagenet", "url": UNREACHABLE, "file": cub_setup["weights"],
                  "fallback": "error", "check_hash": True}
    run = tmp_path / "run"
    assert main(train_args(cub_setup, run, "cub_flexparts_resnet34", pretrained, per_class=2,
                           parts=3, dim=16, warmup_epochs=1, push_epochs=[2])) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["pretrained"] == {"name": "resnet34_imagenet", "file": cub_setup["weights"],
                                     "loaded": True}
    assert metrics["classes"] == ["001.Fake_bird_1", "002.Fake_bird_2", "003.Fake_bird_3"]
    assert metrics["train_images"] == 18 and metrics["test_images"] == 6
    state = torch.load(run / "model.pt", map_location="cpu", weights_only=False)
    assert state["mean"] == pytest.approx([0.485, 0.456, 0.406])  # ImageNet normalisation
    # The push after epoch 2 moved every part onto a training patch of its own class.
    sources = state["state_dict"]["net.prototypes.push_source"]
    assert (sources >= 0).all() and sources.shape == (6, 3, 3)

    figure = tmp_path / "parts.png"
    assert main(["figure", "prototype_parts", "--model", str(run / "model.pt"), "--data",
                 str(cub_setup["data"]), "--n-images", "2", "--n-prototypes", "2",
                 "--out", str(figure)]) == 0
    assert figure.stat().st_size > 0


def test_missing_weights_stop_with_one_line_unless_the_fallback_is_scratch(cub_setup, tmp_path,
                                                                           capsys):
    missing = {"name": "resnet34_imagenet", "url": UNREACHABLE, "file": "resnet34-00000000.pth",
               "fallback": "error", "check_hash": True}
    capsys.readouterr()
    assert main(train_args(cub_setup, tmp_path / "stop", "cub_resnet34", missing)) == 1
    line = one_error_line(capsys)
    assert "resnet34-00000000.pth" in line and "data_mirror" in line
    assert not (tmp_path / "stop" / "metrics.json").exists()

    scratch = {**missing, "fallback": "scratch"}
    run = tmp_path / "scratch"
    assert main(train_args(cub_setup, run, "cub_resnet34", scratch)) == 0
    assert "trains its backbone from scratch" in capsys.readouterr().err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["pretrained"]["loaded"] is False


def test_weights_that_do_not_fit_the_backbone_are_a_config_error(cub_setup, tmp_path, capsys):
    pretrained = {"name": "resnet34_imagenet", "url": UNREACHABLE, "file": cub_setup["weights"],
                  "fallback": "error", "check_hash": True}
    capsys.readouterr()
    args = train_args(cub_setup, tmp_path / "bagnet", "cub_bagnet33", pretrained)
    assert main(args) == 1
    assert "experiments/cub_bagnet33/pretrained" in one_error_line(capsys)
