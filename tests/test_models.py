import pytest
import torch

from whitebox.code_identity import registered_models
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


def test_the_static_registry_scan_finds_every_registered_model():
    """The workflow checks model names without torch (whitebox.code_identity); it must find
    exactly the builders the registry imports."""
    assert sorted(registered_models()) == model_names()
    assert registered_models()["inh"] == "whitebox.models.hashing"


def test_init_weights_runs_once_per_layer(monkeypatch):
    """Layers initialise themselves in their constructors, and nothing initialises them again
    (no second draw that would change what a seed gives)."""
    from whitebox.layers.base import Regularized

    calls: dict[int, int] = {}
    for cls in {c for c in _subclasses(Regularized) if "init_weights" in vars(c)}:
        original = vars(cls)["init_weights"]

        def counted(self, original=original):
            calls[id(self)] = calls.get(id(self), 0) + 1
            return original(self)

        monkeypatch.setattr(cls, "init_weights", counted)
    examples = {"conj_disj": {}, "positive_lenet": {}, "augmax_lenet": {"n_units": 30},
                "invariant_lenet": {"part": "scale"}, "signed_lenet": {}, "parallel_copies": {}}
    initialising = 0
    for name, model_args in examples.items():
        calls.clear()
        model = build_classifier(name, 3, [0.5] * 3, [0.25] * 3, image_size=32, **model_args)
        for module in model.modules():
            if isinstance(module, Regularized) and \
                    type(module).init_weights is not vars(Regularized)["init_weights"]:
                assert calls.get(id(module)) == 1, (name, type(module).__name__)
                initialising += 1
    assert initialising >= 10  # the examples hold layers of several kinds that initialise


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_a_model_module_registers_itself_without_an_import_cycle():
    """registry.py imports no model module; every model module imports the registry."""
    from whitebox.code_identity import imported_modules

    assert not {m for m in imported_modules("whitebox.models.registry")
                if m.startswith("whitebox.models.") and m != "whitebox.models.registry"}
    for module in set(registered_models().values()):
        assert "whitebox.models.registry" in imported_modules(module), module
