"""Every experiment in config.yaml builds, trains a step on synthetic data, saves and reloads."""

import dataclasses

import pytest
import torch

from tests.conftest import REPO
from whitebox.config import experiment_spec, load_config
from whitebox.data import make_synthetic, mean_std
from whitebox.models import build_classifier, classifier_from_checkpoint
from whitebox.training import TrainSettings, fit

CONFIG = load_config(REPO / "config.yaml")
CLASSES = {"cifar10": 10, "mnist": 10, "cub200": 200}
# Image side per base dataset: BagNet-33 needs more than 32 px to keep a feature map (40:
# a 1x1 map; its cost grows fast with the side).
SIZES = {"mnist": 28, "cub200": 40}


def n_classes(spec) -> int:
    return len(spec.classes) if spec.classes else CLASSES[spec.base_dataset]


@pytest.mark.parametrize("name", sorted(CONFIG["experiments"]))
def test_experiment_trains_one_step_and_reloads(name):
    spec = experiment_spec(CONFIG, name)
    classes = [f"c{i}" for i in range(n_classes(spec))]
    size = SIZES.get(spec.base_dataset, 32)
    channels = 1 if spec.base_dataset == "mnist" else 3
    per_class = 1 if len(classes) > 20 else 4
    data = make_synthetic("toy", classes, image_size=size, channels=channels,
                          train_per_class=per_class, test_per_class=per_class)
    if len(classes) > 20:  # CUB: 200 classes; a step on 16 of their images keeps BagNets quick
        data.train = dataclasses.replace(data.train, images=data.train.images[:16],
                                         labels=data.train.labels[:16])
        data.test = dataclasses.replace(data.test, images=data.test.images[:16],
                                        labels=data.test.labels[:16])
    mean, std = mean_std(data.train)
    torch.manual_seed(0)
    model = build_classifier(spec.model, len(classes), mean, std, image_size=size, **spec.model_args)
    settings = TrainSettings(**{**spec.training, "epochs": 1, "batch_size": len(data.train.labels)})
    records, _ = fit(model, data.train.images, data.train.labels, data.test.images,
                     data.test.labels, settings, seed=0)
    assert len(records) == 1 and torch.isfinite(torch.tensor(records[0].train_loss))

    state = {"state_dict": model.state_dict(), "spec": dataclasses.asdict(spec),
             "classes": classes, "mean": mean, "std": std, "image_size": size}
    reloaded = classifier_from_checkpoint(state)
    images = data.test.images.float() / 255
    with torch.no_grad():
        expected = model.eval()(images)
        # Training leaves the model channels_last, the reloaded one is contiguous: the same
        # numbers up to rounding, which a whitening layer fit on a dozen images amplifies.
        torch.testing.assert_close(reloaded(images), expected, rtol=1e-4,
                                   atol=1e-4 * float(expected.abs().max()))
