import copy
import re

import pytest
import yaml

from tests.conftest import REPO
from whitebox.config import (
    GPU_SKIPPED,
    NOT_SELECTED,
    ConfigError,
    base_datasets,
    dataset_source,
    experiment_spec,
    figure_file,
    figure_files,
    gpu_request,
    gradient_comparison_stages,
    job_resources,
    load_config,
    presentation,
    validate_config,
)
from whitebox.figures.kinds import noise_gradient_rows
from whitebox.paper.verdicts import claims_summary
from whitebox.spec import RunSpec


@pytest.fixture
def config() -> dict:
    return load_config(REPO / "config.yaml")


def test_repository_config_is_valid_and_defaults_are_filled(config):
    assert config["seeds"] == [0, 1, 2]
    training = config["experiments"]["directional"]["training"]
    assert training["label_smoothing"] == 0 and training["schedule"] == "constant"
    assert training["optimizer"]["weight_decay"] == 0
    assert base_datasets(config) == ["cifar10", "cub200", "mnist"]
    # No schema default of one dataset kind may leak into the entries of another kind.
    assert config["datasets"]["cifar2"] == {"subset_of": "cifar10",
                                            "classes": ["airplane", "automobile"]}
    assert config["datasets"]["cub200"] == {"source": "cub"}


def test_spec_resolves_subset_and_base(config):
    spec = experiment_spec(config, "conj_disj")
    assert spec.dataset == "cifar2" and spec.base_dataset == "cifar10"
    assert spec.classes == ["airplane", "automobile"]
    assert spec.source == {"source": "torchvision"}
    assert RunSpec.from_json(spec.to_json()) == spec


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
    (lambda c: c["datasets"]["cub200"].update(crop="square"), "datasets/cub200"),
    (lambda c: c["experiments"]["cub_resnet34"].update(pretrained="vgg16"),
     "experiments/cub_resnet34/pretrained: unknown weights 'vgg16'"),
    (lambda c: c["pretrained_weights"]["resnet34_imagenet"].update(file="resnet34.pth"),
     "pretrained_weights/resnet34_imagenet/file"),
])
def test_bad_config_gives_one_line_naming_the_key(mutate, message):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    mutate(config)
    with pytest.raises(ConfigError, match=message) as error:
        validate_config(config)
    assert "\n" not in str(error.value)


def test_unknown_experiment_lists_valid_names(config):
    with pytest.raises(ConfigError, match="valid: airbench_cifar10, augmax_cifar10, augmax_cifar3, "):
        experiment_spec(config, "nope")


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")


def _shared_objects(value, seen: dict, path: str, shared: list) -> None:
    if isinstance(value, dict | list):
        if id(value) in seen:
            shared.append(f"{path} is {seen[id(value)]}")
            return
        seen[id(value)] = path
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            _shared_objects(item, seen, f"{path}/{key}", shared)


def test_config_yaml_has_no_shared_entries():
    # A YAML alias makes two experiments share one dict; a --config override (or the smoke
    # profile's merge) of one would then silently change the other too.
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    shared: list[str] = []
    _shared_objects(raw, {}, "", shared)
    assert shared == []


def test_figure_files_default_and_named(config):
    assert figure_file(config, "conj_disj", "gradients") == "results/cifar2/conj_disj_gradients.png"
    assert figure_file(config, "gumbel2", "noise_gradients") == "results/cifar2/gumbel_unit59.png"
    assert figure_files(config)["results/cifar2/positive_lenet_units.png"] == (
        "positive_lenet", "noise_gradients")


def test_two_figures_writing_one_file_are_a_config_error(config):
    config["experiments"]["directional"]["figures"]["gradients"]["file"] = "conj_disj_gradients"
    with pytest.raises(ConfigError, match="conj_disj_gradients.png is also the gradients figure"):
        validate_config(config)


def test_noise_gradient_rows_of_one_layer_or_several(config):
    figures = config["experiments"]
    assert noise_gradient_rows(figures["gumbel2"]["figures"]["noise_gradients"]) == [("net.conv3", [59])]
    rows = noise_gradient_rows(figures["positive_vgg4"]["figures"]["noise_gradients"])
    assert [layer for layer, _ in rows] == ["net.conv1", "net.conv2", "net.conv3", "net.conv4"]
    rows = noise_gradient_rows({"layers": {"net.b": [1], "net.a": [0]}})
    assert rows == [("net.a", [0]), ("net.b", [1])]  # name order, whatever the map's order
    both = copy.deepcopy(config)
    both["experiments"]["positive_vgg4"]["figures"]["noise_gradients"]["layer"] = "net.conv1"
    with pytest.raises(ConfigError, match="give either layer"):
        validate_config(both)


@pytest.mark.parametrize("change, message", [
    ({"family": "nope"}, "unknown family 'nope'"),
    ({"finding": {"text": "x", "relation": "lower", "than": "nope"}}, "unknown experiment 'nope'"),
    ({"finding": {"text": "x", "relation": "lower"}}, "'than' is a dependency of 'relation'"),
    ({"finding": {"text": "x", "relation": "bigger", "than": "conj_disj"}}, "'bigger' is not one of"),
])
def test_bad_families_and_findings_are_one_line_errors(config, change, message):
    config["experiments"]["directional"].update(change)
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_display_fields_do_not_change_the_hash(config):
    spec = experiment_spec(config, "norm_iternorm")
    shown = presentation(config)["norm_iternorm"]
    assert shown["family"] == "normalization" and shown["family_title"]
    assert shown["finding"]["than"] == "positive_lenet_cifar3"
    changed = copy.deepcopy(config)
    changed["experiments"]["norm_iternorm"]["finding"]["text"] = "other words"
    assert experiment_spec(changed, "norm_iternorm").config_hash() == spec.config_hash()


def test_pretrained_weights_resolve_into_the_spec_and_its_hash(config):
    spec = experiment_spec(config, "cub_bagnet33")
    assert config["experiments"]["cub_bagnet33"]["gpu"] and spec.pretrained["name"] == "bagnet33_imagenet"
    assert spec.pretrained["file"] == "bagnet32-2ddd53ed.pth.tar"
    assert spec.pretrained["fallback"] == "scratch"
    assert experiment_spec(config, "cub_resnet34").pretrained["fallback"] == "error"
    assert experiment_spec(config, "conj_disj").pretrained is None
    scratch = copy.deepcopy(config)
    scratch["experiments"]["cub_bagnet33"]["pretrained"] = None
    assert experiment_spec(scratch, "cub_bagnet33").config_hash() != spec.config_hash()


def test_gpu_experiments_skip_leaves_out_the_gpu_stage():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["gpu_experiments"] = "skip"
    experiments = validate_config(config)["experiments"]
    assert experiments and not any(e.get("gpu") for e in experiments.values())
    assert "cub_resnet34" not in experiments and "conj_disj" in experiments
    assert "cub200" not in base_datasets(config)


def test_gpu_experiments_skip_refuses_a_comparison_with_a_left_out_stage():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["gpu_experiments"] = "skip"
    config["experiments"]["directional"]["finding"] = {
        "text": "x", "relation": "lower", "than": "cub_resnet34"}
    with pytest.raises(ConfigError, match="compares with GPU experiment 'cub_resnet34'"):
        validate_config(config)


def test_only_experiments_leaves_out_the_others_as_not_run():
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    raw["only_experiments"] = ["lenet_unconstrained_robust", "lenet_unconstrained", "positive_lenet",
                               "positive_lenet_affine", "positive_lenet_shuffled"]
    claim = {"experiment": "mlp_mnist", "text": "t", "metric": "alignment", "relation": "lower",
             "value": 1}
    raw["claims"]["items"].append(claim)
    config = validate_config(raw)
    assert list(config["experiments"]) == [n for n in raw["experiments"] if n in raw["only_experiments"]]
    assert base_datasets(config) == ["cifar10"]  # no MNIST, no CUB
    shown = presentation(config)
    assert shown["mlp_mnist"]["untested"] == NOT_SELECTED == "not run (only_experiments)"
    assert shown["positive_lenet"]["untested"] is None
    # The claims summary marks a claim about a left-out experiment untested, with the reason.
    summary = claims_summary([], [], shown, config["claims"])
    row = next(r for r in summary["log"] if r["text"] == "t")
    assert row["mark"] == "untested" and row["reason"] == "mlp_mnist: not run (only_experiments)"


def test_only_experiments_and_gpu_skip_give_each_left_out_experiment_its_reason():
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    raw["gpu_experiments"] = "skip"
    raw["only_experiments"] = ["conj_disj", "cub_resnet34"]
    config = validate_config(raw)
    assert list(config["experiments"]) == ["conj_disj"]
    shown = presentation(config)
    assert shown["cub_resnet34"]["untested"] == GPU_SKIPPED
    assert shown["directional"]["untested"] == NOT_SELECTED


@pytest.mark.parametrize(("only", "message"), [
    (["conj_disj", "nope"], "config error at only_experiments: unknown experiment 'nope'; valid: "),
    (["positive_lenet", "positive_lenet_shuffled"],
     "config error at only_experiments: 'positive_lenet' compares with 'positive_lenet_affine', "
     "which only_experiments leaves out; add 'positive_lenet_affine' to only_experiments"),
    (["mlp_mnist"], "'mlp_mnist' compares with 'mlp_mnist_shuffled'"),  # a random-label twin
])
def test_bad_only_experiments_are_one_line_errors(only, message):
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    raw["only_experiments"] = only
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        validate_config(raw)
    assert "\n" not in str(error.value)


def test_only_experiments_of_gpu_stages_alone_leave_nothing_under_gpu_skip():
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    raw["only_experiments"] = ["cub_resnet34"]
    raw["gpu_experiments"] = "skip"
    with pytest.raises(ConfigError, match="skip leaves no experiment .every one listed in "
                                          "only_experiments is marked gpu"):
        validate_config(raw)


def test_a_dataset_note_is_shown_by_the_paper_and_changes_no_run(config):
    noted = copy.deepcopy(config)
    noted["datasets"]["cifar10"] = {"source": "imagefolder", "path": "/d/cifar10-jpeg.zip",
                                    "note": "CIFAR-10 re-encoded as JPEG (stand-in), not CIFAR-10"}
    validate_config(noted)
    plain = copy.deepcopy(noted)
    del plain["datasets"]["cifar10"]["note"]
    assert dataset_source(noted, "cifar10") == {"source": "imagefolder", "path": "/d/cifar10-jpeg.zip"}
    assert experiment_spec(noted, "conj_disj") == experiment_spec(plain, "conj_disj")
    shown = presentation(noted)
    assert shown["conj_disj"]["data_note"] == noted["datasets"]["cifar10"]["note"]  # via cifar2
    assert shown["mlp_mnist"]["data_note"] is None and presentation(plain)["conj_disj"]["data_note"] is None


def test_job_resources_merge_default_group_and_experiment(config):
    assert job_resources(config, "figures") == {"mem_mb": 8000, "runtime": 30}
    assert job_resources(config, "train", "conv_simple") == {"mem_mb": 8000, "runtime": 240}
    assert job_resources(config, "train", "cub_flexparts_bagnet33") == {"mem_mb": 32000, "runtime": 720}
    config["cluster"]["resources"] = {"default": {"mem_mb": 1000, "runtime": 5},
                                      "train": {"runtime": 9}}
    assert job_resources(config, "evaluate") == {"mem_mb": 1000, "runtime": 5}
    assert job_resources(config, "train", "conv_simple") == {"mem_mb": 1000, "runtime": 9}


def test_only_gpu_experiments_ask_for_a_gpu_in_either_style(config):
    assert gpu_request(config, "conv_simple") == {"gpu": 0, "gpu_model": "", "gres": ""}
    assert gpu_request(config, "cub_resnet34") == {"gpu": 1, "gpu_model": "", "gres": ""}
    config["cluster"]["gpu_model"] = "a100"
    assert gpu_request(config, "cub_resnet34") == {"gpu": 1, "gpu_model": "a100", "gres": ""}
    assert gpu_request(config, "conv_simple")["gpu_model"] == ""  # no "--gpus=a100:0"
    config["cluster"]["gpu_request"] = "gres"
    assert gpu_request(config, "cub_resnet34") == {"gpu": 0, "gpu_model": "", "gres": "gpu:a100:1"}
    config["cluster"]["gpu_model"] = None
    assert gpu_request(config, "cub_resnet34")["gres"] == "gpu:1"
    assert gpu_request(config, "conv_simple")["gres"] == ""


@pytest.mark.parametrize("cluster, message", [
    ({"resources": {"train": {"mem_mb": 10}}}, "cluster/resources/train/mem_mb: 10 is less than"),
    ({"resources": {"trian": {"mem_mb": 1000}}}, "cluster/resources: Additional properties"),
    ({"resources": {"default": {"mem_mb": 1000}}}, "'runtime' is a required property"),
    ({"gpu_request": "gpus_per_node"}, "cluster/gpu_request: 'gpus_per_node' is not one of"),
])
def test_bad_cluster_settings_are_one_line_errors(config, cluster, message):
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    raw["cluster"] = cluster
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(raw)


def test_cuda_devices_are_valid_device_settings():
    for device in ("auto", "cpu", "cuda", "cuda:3"):
        raw = yaml.safe_load((REPO / "config.yaml").read_text())
        raw["device"] = device
        assert validate_config(raw)["device"] == device


def test_gpu_experiments_skip_must_leave_some_experiment():
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    raw["experiments"] = {name: entry for name, entry in raw["experiments"].items() if entry.get("gpu")}
    raw["gpu_experiments"] = "skip"
    raw.pop("claims")  # its claims and gradient comparisons are about the experiments removed here
    raw.pop("gradient_comparison")
    with pytest.raises(ConfigError, match="gpu_experiments: skip leaves no experiment"):
        validate_config(raw)


def test_gradient_metric_settings_and_claim_margins_have_defaults():
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    del raw["gradient_metrics"], raw["claims"]
    config = validate_config(raw)
    assert config["gradient_metrics"] == {"n_images": 64, "n_noise": 8, "noise_std": 0.25,
                                          "noise_seed": 0, "max_classes": 10, "cascade_steps": 6,
                                          "curve_steps": 16}
    assert config["claims"]["items"] == [] and config["claims"]["margins"]["test_accuracy"] == 1.0
    assert config["claims"]["margins"]["reported_accuracy"] == 2.0


def test_shuffle_labels_and_adversarial_are_left_out_of_specs_that_do_not_set_them(config):
    """A new training key must not change the spec (and so retrain) every other experiment."""
    assert "shuffle_labels" not in config["experiments"]["directional"]["training"]
    assert config["experiments"]["mlp_mnist_shuffled"]["training"]["shuffle_labels"] is True
    assert "adversarial" not in experiment_spec(config, "lenet_unconstrained").training
    robust = experiment_spec(config, "lenet_unconstrained_robust")
    assert robust.training["adversarial"] == {"norm": "linf", "eps": 0.0314, "steps": 3}
    standard = experiment_spec(config, "lenet_unconstrained")
    assert robust.training == {**standard.training, "adversarial": robust.training["adversarial"]}
    assert (robust.dataset, robust.model, robust.model_args) == (
        standard.dataset, standard.model, standard.model_args)


def test_flip_labels_is_left_out_of_specs_that_do_not_set_it_and_label_errors_need_it(config):
    flipped, plain = experiment_spec(config, "inh_mnist_flipped"), experiment_spec(config, "inh_mnist")
    assert "flip_labels" not in plain.training
    assert flipped.training == {**plain.training, "flip_labels": {"share": 0.01, "seed": 0}}
    assert (flipped.dataset, flipped.model, flipped.model_args) == (
        plain.dataset, plain.model, plain.model_args)
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    del raw["experiments"]["inh_mnist_flipped"]["training"]["flip_labels"]
    with pytest.raises(ConfigError, match=re.escape(
            "config error at experiments/inh_mnist_flipped/evaluations: label_errors needs known "
            "label errors; set training: {flip_labels: {share: 0.01}}")):
        validate_config(raw)


@pytest.mark.parametrize(("adversarial", "message"), [
    ({"norm": "l2", "eps": 0.5, "steps": 3}, "adversarial/norm: 'l2' is not one of ['linf']"),
    ({"eps": -0.1, "steps": 3}, "adversarial/eps: -0.1 is less than or equal to the minimum of 0"),
    ({"eps": 0.1, "steps": 0}, "adversarial/steps: 0 is less than the minimum of 1"),
])
def test_bad_adversarial_training_is_a_one_line_error_naming_the_key(adversarial, message):
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    raw["experiments"]["mlp_mnist_robust"]["training"]["adversarial"] = adversarial
    with pytest.raises(ConfigError, match=re.escape(
            f"config error at experiments/mlp_mnist_robust/training/{message}")) as error:
        validate_config(raw)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("twin_edit", "message"), [
    ({"random_label_twin": "nope"}, "random_label_twin: unknown experiment 'nope'"),
    ({"random_label_twin": "mlp_mnist"}, "'mlp_mnist' does not train on shuffled labels"),
    ({"random_label_twin": "positive_lenet_shuffled"},
     "'positive_lenet_shuffled' has another dataset"),
])
def test_a_random_label_twin_must_be_the_same_model_on_shuffled_labels(twin_edit, message):
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    raw["experiments"]["mlp_mnist"].update(twin_edit)
    with pytest.raises(ConfigError, match="experiments/mlp_mnist/random_label_twin: .*"
                       + re.escape(message.removeprefix("random_label_twin: "))):
        validate_config(raw)


@pytest.mark.parametrize(("claim", "message"), [
    ({"experiment": "nope", "metric": "alignment", "relation": "lower", "value": 1},
     "claims/items/0/experiment: unknown experiment 'nope'"),
    ({"experiment": "directional", "metric": "alignment", "relation": "lower", "than": "x"},
     "claims/items/0/than: unknown experiment 'x'"),
    ({"experiment": "directional", "metric": "alignment", "relation": "lower"},
     "claims/items/0: 'a claim' needs than or value"),
    ({"experiment": "directional", "metric": "time_ratio", "relation": "similar", "value": 8},
     "needs than (a time ratio is between two experiments)"),
    ({"experiment": "directional", "metric": "accuracy", "relation": "lower", "value": 1},
     "claims/items/0/metric: 'accuracy' is not one of"),
    ({"experiment": "directional", "metric": "top_view_share", "relation": "lower", "value": 95},
     "claims/items/0/experiment: a top_view_share claim needs the view_usage evaluation of "
     "'directional'; add view_usage to experiments/directional/evaluations"),
    ({"experiment": "inh_mnist", "metric": "pgd_accuracy", "eps": 0.1, "relation": "higher",
      "than": "directional"}, "claims/items/0/than: a pgd_accuracy claim needs the attacks"),
    ({"experiment": "inh_mnist_naive", "metric": "label_error_recall", "relation": "higher",
      "value": 50}, "claims/items/0/experiment: a label_error_recall claim needs the label_errors "
                    "evaluation of 'inh_mnist_naive'; add label_errors to experiments/inh_mnist_naive"),
])
def test_bad_claims_are_one_line_errors(claim, message):
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    raw["claims"]["items"] = [{"text": "a claim", **claim}]
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(raw)


def test_gpu_experiments_skip_keeps_the_left_out_stages_for_the_paper_as_untested():
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    raw["gpu_experiments"] = "skip"
    claim = {"experiment": "cub_bagnet33", "text": "t", "metric": "alignment", "relation": "lower",
             "value": 1}
    raw["claims"]["items"].append(claim)
    config = validate_config(raw)
    assert claim in config["claims"]["items"]  # the claims summary marks it untested
    shown = presentation(config)
    assert shown["cub_bagnet33"]["untested"] == GPU_SKIPPED and shown["conj_disj"]["untested"] is None


@pytest.mark.parametrize(("stages", "message"), [
    ({"cifar2": ["nope"]}, "gradient_comparison/stages/cifar2: unknown experiment 'nope'"),
    ({"cifar2": ["positive_lenet_cifar3"]}, "'positive_lenet_cifar3' trains on cifar3, not cifar2"),
    ({"cifar7": ["conj_disj"]}, "gradient_comparison/stages/cifar7: unknown dataset 'cifar7'"),
])
def test_gradient_comparison_stages_are_experiments_of_their_dataset(stages, message):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["gradient_comparison"]["stages"] = stages
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_gradient_comparison_leaves_out_stages_that_are_not_run():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["gpu_experiments"] = "skip"
    config["gradient_comparison"]["stages"] = {"cifar2": ["conj_disj", "positive_lenet"],
                                               "cub200": ["cub_resnet34"]}
    assert gradient_comparison_stages(validate_config(config)) == {
        "cifar2": ["conj_disj", "positive_lenet"]}


TEN_CLASS = {"directional_cifar10": False, "lenet_unconstrained_cifar10": False,
             "positive_lenet_cifar10": False, "lenet_unconstrained_robust_cifar10": True,
             "augmax_cifar10": True, "inh_cifar10": True, "airbench_cifar10": True}


def test_ten_class_experiments_train_on_all_of_cifar10_and_skip_drops_the_heavy_ones(config):
    for name, gpu in TEN_CLASS.items():
        spec = experiment_spec(config, name)
        assert spec.dataset == "cifar10" and spec.classes is None, name  # all ten classes
        assert config["experiments"][name]["gpu"] is gpu, name
    assert experiment_spec(config, "augmax_cifar10").model_args["n_units"] == 600  # 60 per class
    robust = experiment_spec(config, "lenet_unconstrained_robust_cifar10")
    twin = experiment_spec(config, "lenet_unconstrained_cifar10")
    assert robust.model_args == twin.model_args and robust.training["adversarial"]["eps"] == 0.0314
    assert "adversarial" not in twin.training
    goal = [c for c in config["claims"]["items"] if c["experiment"] == "airbench_cifar10"]
    assert goal == [{"experiment": "airbench_cifar10", "text": goal[0]["text"], "group": "beyond",
                     "metric": "test_accuracy", "relation": "at_least", "value": 94, "margin": 0}]

    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    raw["gpu_experiments"] = "skip"
    skipped = validate_config(raw)
    kept = {name for name, gpu in TEN_CLASS.items() if not gpu}
    assert set(TEN_CLASS) & set(skipped["experiments"]) == kept
    assert presentation(skipped)["airbench_cifar10"]["untested"] == GPU_SKIPPED
