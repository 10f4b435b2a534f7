import copy

import pytest
import yaml

from tests.conftest import REPO
from whitebox.config import (
    ConfigError,
    ExperimentSpec,
    base_datasets,
    experiment_spec,
    load_config,
    validate_config,
)


@pytest.fixture
def config() -> dict:
    return load_config(REPO / "config.yaml")


def test_repository_config_is_valid_and_defaults_are_filled(config):
    assert config["seeds"] == [0, 1, 2]
    training = config["experiments"]["directional"]["training"]
    assert training["label_smoothing"] == 0 and training["schedule"] == "constant"
    assert training["optimizer"]["weight_decay"] == 0
    assert base_datasets(config) == ["cifar10", "mnist"]


def test_spec_resolves_subset_and_base(config):
    spec = experiment_spec(config, "conj_disj")
    assert spec.dataset == "cifar2" and spec.base_dataset == "cifar10"
    assert spec.classes == ["airplane", "automobile"]
    assert spec.source == {"source": "torchvision"}
    assert ExperimentSpec.from_json(spec.to_json()) == spec


def test_hash_ignores_display_fields_only(config):
    spec = experiment_spec(config, "conj_disj")
    retitled = copy.deepcopy(config)
    retitled["experiments"]["conj_disj"]["title"] = "Another name"
    assert experiment_spec(retitled, "conj_disj").config_hash() == spec.config_hash()
    longer = copy.deepcopy(config)
    longer["experiments"]["conj_disj"]["training"]["epochs"] = 9
    assert experiment_spec(longer, "conj_disj").config_hash() != spec.config_hash()


@pytest.mark.parametrize("mutate,message", [
    (lambda c: c.update(colour="red"), "'colour' was unexpected"),
    (lambda c: c["experiments"]["conj_disj"].update(model="resnet"), "experiments/conj_disj/model"),
    (lambda c: c["experiments"]["conj_disj"]["training"].update(epochs=0), "epochs"),
    (lambda c: c["experiments"]["conj_disj"].update(dataset="imagenet"), "unknown dataset 'imagenet'"),
    (lambda c: c["datasets"].update(svhn={"source": "torchvision"}), "torchvision source knows only"),
    (lambda c: c["datasets"]["cifar2"].update(subset_of="cifar3"), "not a base dataset"),
    (lambda c: c["datasets"]["cifar10"].update(source="imagefolder"), "datasets/cifar10"),
])
def test_bad_config_gives_one_line_naming_the_key(mutate, message):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    mutate(config)
    with pytest.raises(ConfigError, match=message) as error:
        validate_config(config)
    assert "\n" not in str(error.value)


def test_unknown_experiment_lists_valid_names(config):
    with pytest.raises(ConfigError, match="valid: conj_disj, directional"):
        experiment_spec(config, "nope")


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")
