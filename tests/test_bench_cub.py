"""The pure helpers of benchmarks/cub.py (no timing; tiny images, few classes)."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks.*

from benchmarks import cub  # noqa: E402

SIZE = 64
CLASSES = 3


@pytest.fixture(scope="module")
def variants() -> dict[str, tuple[str, dict]]:
    from whitebox.config import load_config

    return cub.cub_variants(load_config(cub.CONFIG))


def test_variants_are_the_cub_experiments_with_their_config_arguments(variants):
    assert list(variants) == ["cub_resnet34", "cub_protopnet_resnet34", "cub_flexparts_resnet34",
                              "cub_bagnet33", "cub_flexparts_bagnet33"]
    assert variants["cub_resnet34"][0] == variants["cub_bagnet33"][0] == "finetuned_cnn"
    protopnet, flexparts = variants["cub_protopnet_resnet34"], variants["cub_flexparts_resnet34"]
    assert protopnet[0] == flexparts[0] == variants["cub_flexparts_bagnet33"][0] == "prototype_network"
    assert (protopnet[1]["parts"], protopnet[1]["per_class"]) == (1, 10)
    assert (flexparts[1]["parts"], flexparts[1]["per_class"]) == (9, 5)
    for baseline, others in cub.GROUPS.items():  # each variant is timed against its own backbone
        assert all(variants[name][1]["backbone"] == variants[baseline][1]["backbone"] for name in others)


def test_every_timed_variant_has_a_cpu_limit_above_one():
    timed = {name for others in cub.GROUPS.values() for name in others}
    assert set(cub.CPU_RATIO_LIMITS) == timed
    assert all(limit is None or 1.0 < limit < 2.0 for limit in cub.CPU_RATIO_LIMITS.values())


def test_missing_experiment_is_named():
    with pytest.raises(KeyError, match="cub_resnet34"):
        cub.cub_variants({"experiments": {}})


def test_step_shape_per_device():
    assert cub.step_shape("cuda", quick=False) == cub.step_shape("cuda", quick=True) == cub.StepShape(64, 224)
    assert cub.step_shape("cpu", quick=False) == cub.StepShape(8, 224)
    assert cub.step_shape("cpu", quick=True) == cub.StepShape(8, 112)


def test_images_per_second():
    assert cub.images_per_second(64, 0.5) == 128.0
    with pytest.raises(ValueError):
        cub.images_per_second(8, 0.0)


def test_synthetic_batch_is_uint8_seeded_and_labels_in_range():
    images, labels = cub.synthetic_batch(cub.StepShape(4, SIZE), torch.device("cpu"), n_classes=CLASSES)
    assert images.dtype == torch.uint8 and images.shape == (4, 3, SIZE, SIZE)
    assert labels.shape == (4,) and labels.min() >= 0 and labels.max() < CLASSES
    again, _ = cub.synthetic_batch(cub.StepShape(4, SIZE), torch.device("cpu"), n_classes=CLASSES)
    assert torch.equal(images, again)


@pytest.mark.parametrize("name", ["cub_resnet34", "cub_protopnet_resnet34", "cub_flexparts_resnet34",
                                  "cub_bagnet33", "cub_flexparts_bagnet33"])
def test_train_step_trains_the_backbone_in_the_joint_phase(variants, name):
    model_name, model_args = variants[name]
    model = cub.build_model(model_name, model_args, SIZE, torch.device("cpu"), n_classes=CLASSES)
    assert model.training
    net = model.net
    assert all(p.requires_grad for p in net.backbone.parameters())
    if hasattr(net, "last_layer"):  # ProtoPNet's joint phase: the last layer waits for its refit
        assert not net.last_layer.weight.requires_grad
    optimizer = cub.make_optimizer(model)
    scales = sorted({group["lr"] / cub.LR for group in optimizer.param_groups})
    assert scales[0] == pytest.approx(1.0) and scales[-1] == pytest.approx(model_args["head_lr_scale"])
    images, labels = cub.synthetic_batch(cub.StepShape(2, SIZE), torch.device("cpu"), n_classes=CLASSES)
    before = net.backbone.conv1.weight.detach().clone()
    loss = cub.train_step(model, optimizer, images, labels, torch.Generator().manual_seed(0))
    assert loss.dim() == 0 and torch.isfinite(loss) and not loss.requires_grad
    assert not torch.equal(net.backbone.conv1.weight, before)


def test_train_step_is_the_step_fit_takes():
    """One fit epoch of one batch and one train_step from the same start give the same weights."""
    from whitebox.config import load_config
    from whitebox.training import TrainSettings, fit
    from whitebox.training.loop import epoch_generator

    model_name, model_args = cub.cub_variants(load_config(cub.CONFIG))["cub_flexparts_resnet34"]
    model_args = {**model_args, "per_class": 1, "warmup_epochs": 0}  # epoch 0 is a joint epoch
    images, labels = cub.synthetic_batch(cub.StepShape(4, SIZE), torch.device("cpu"), n_classes=CLASSES)
    settings = TrainSettings(epochs=1, batch_size=4, optimizer={"name": "adam", "lr": cub.LR},
                             augment=["hflip"], eval_batch_size=4)
    fitted = cub.build_model(model_name, model_args, SIZE, torch.device("cpu"), n_classes=CLASSES)
    with contextlib.redirect_stderr(io.StringIO()):
        fit(fitted, images, labels, images[:2], labels[:2], settings, seed=0)

    stepped = cub.build_model(model_name, model_args, SIZE, torch.device("cpu"), n_classes=CLASSES)
    generator = epoch_generator(0, 0)
    order = torch.randperm(len(images), generator=generator)  # fit's epoch order, same generator
    cub.train_step(stepped, cub.make_optimizer(stepped), images[order], labels[order], generator)

    fitted_state, stepped_state = fitted.state_dict(), stepped.state_dict()
    assert fitted_state.keys() == stepped_state.keys()
    for key, value in fitted_state.items():
        torch.testing.assert_close(stepped_state[key], value, msg=key)
