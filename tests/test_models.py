import pytest
import torch
import yaml

from whitebox.config import SCHEMA_PATH
from whitebox.models import build_classifier, build_model, model_names


@pytest.mark.parametrize("name,n_classes,channels,size", [
    ("conj_disj", 2, 3, 32), ("conj_disj", 3, 3, 32), ("conj_disj", 2, 1, 28),
    ("directional", 2, 3, 32), ("directional", 10, 3, 32), ("directional", 3, 1, 32),
])
def test_models_give_one_logit_per_class(name, n_classes, channels, size):
    model = build_classifier(name, n_classes, [0.5] * channels, [0.25] * channels)
    logits = model(torch.rand(4, channels, size, size))
    assert logits.shape == (4, n_classes)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_conj_disj_layers_as_in_the_log():
    model = build_model("conj_disj", n_classes=2, in_channels=3)
    assert list(dict(model.named_children())) == [
        "conv1", "amp1", "flatten", "bn1", "mean", "smpool", "scale"]
    assert model.conv1.weight.shape == (120, 3, 10, 10) and model.conv1.stride == (2, 2)
    assert model.mean.n_groups == 24


def test_directional_layers_as_in_the_log():
    model = build_model("directional", n_classes=2, in_channels=3)
    assert list(dict(model.named_children())) == [
        "conv1", "mp1", "bn1", "act1", "conv2", "amp1", "flatten", "smpool", "scale"]
    assert model.conv2.weight.shape == (120, 120, 4, 4)
    # 32x32 -> conv 10/2 -> 12x12 -> maxpool 3 -> 4x4 -> conv 4 -> 1x1
    features = model[:5](torch.rand(1, 3, 32, 32))
    assert features.shape == (1, 120, 1, 1)


def test_unknown_model_lists_valid_names():
    with pytest.raises(KeyError, match="conj_disj, directional"):
        build_model("resnet", 2, 3)


def test_schema_model_names_match_registry():
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    assert schema["$defs"]["experiment"]["properties"]["model"]["enum"] == model_names()
