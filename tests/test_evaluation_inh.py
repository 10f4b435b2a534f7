"""INH evaluations: continual slot update, OOD detection (AUROC, noise sets), PGD robustness,
flipped labels exposed by singleton slots."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from whitebox.data import build_dataset, mean_std
from whitebox.data.dataset import save_dataset
from whitebox.errors import ConfigError
from whitebox.evaluation.attacks import inh_flags, robustness_report
from whitebox.evaluation.job import EvaluationJob
from whitebox.evaluation.label_errors import evaluate as evaluate_label_errors
from whitebox.evaluation.label_errors import singleton_flags
from whitebox.evaluation.ood import (
    auroc,
    best_margins,
    class_incremental_report,
    features_of,
    gaussian_noise,
    grey_crops,
    ood_report,
    uniform_noise,
)
from whitebox.evaluation.pgd import pgd_linf
from whitebox.evaluation.slot_update import continual_slot_update, curve_steps
from whitebox.layers import IncrementalNeuralHashing
from whitebox.layers.hashing import precision_thresholds
from whitebox.layers.set_cover import greedy_set_cover
from whitebox.models import build_classifier
from whitebox.training import TrainSettings, fit
from whitebox.training.label_noise import flip_labels

CLASSES = ["a", "b", "c", "d"]


def synthetic(classes=CLASSES, train_per_class=40, test_per_class=60):
    source = {"source": "synthetic", "classes": classes, "channels": 1, "image_size": 28,
              "train_per_class": train_per_class, "test_per_class": test_per_class}
    return build_dataset("x", source, root=None)


def trained_inh(dataset, pooling="max", epochs=1):
    mean, std = mean_std(dataset.train)
    torch.manual_seed(0)
    model = build_classifier("inh", dataset.num_classes, mean, std, image_size=28, pooling=pooling)
    settings = TrainSettings(epochs=epochs, batch_size=64, optimizer={"name": "adam", "lr": 1e-3})
    fit(model, dataset.train.images, dataset.train.labels, dataset.test.images,
        dataset.test.labels, settings, seed=0)
    return model.eval()


@pytest.fixture(scope="module")
def data():
    return synthetic()


@pytest.fixture(scope="module")
def max_model(data):
    return trained_inh(data, epochs=2)


@pytest.fixture(scope="module", params=["max", "softmax"])
def model(request, data):
    if request.param == "max":
        return request.getfixturevalue("max_model")
    return trained_inh(data, pooling="softmax", epochs=2)


def snapshot(model):
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def assert_unchanged(model, before):
    after = model.state_dict()
    assert after.keys() == before.keys()
    for name, value in before.items():
        assert torch.equal(after[name], value), name


def roundtrip(report: dict) -> dict:
    return json.loads(json.dumps(report, allow_nan=False))


# -- continual slot update ---------------------------------------------------------------
def test_slot_update_covers_the_unmatched_and_keeps_the_model(model, data):
    images, labels = data.test.images, data.test.labels
    before = snapshot(model)
    report = continual_slot_update(model, images, labels, seed=3)
    assert_unchanged(model, before)
    assert roundtrip(report) == report
    layer = model.net.inh
    n = len(labels)
    assert report["n_update"] == n // 2 and report["n_held_out"] == n - n // 2
    assert report["slots_before"] == layer.n_slots
    assert report["slots_after"] == layer.n_slots + report["new_slots"]

    # the revealed examples are exactly the unmatched ones of the update half A
    order = torch.randperm(n, generator=torch.Generator().manual_seed(3))
    update = order[: n // 2]
    margins = best_margins(model, images)
    unmatched = update[margins[update] < 0]
    assert report["labels_revealed"] == report["update"]["before"]["unmatched"] == len(unmatched) > 0
    assert report["held_out"]["before"]["unmatched"] == int((margins[order[n // 2:]] < 0).sum())

    # new slots = the greedy cover of the revealed examples (recomputed here)
    unit = torch.nn.functional.normalize(features_of(model, images[unmatched]), dim=1)
    revealed_labels = labels[unmatched]
    thresholds = precision_thresholds(unit @ unit.t(), revealed_labels, revealed_labels)
    coverage = (unit @ unit.t() >= thresholds.view(-1, 1)) & (
        revealed_labels.view(-1, 1) == revealed_labels.view(1, -1))
    assert report["new_slots"] == greedy_set_cover(coverage).numel() > 0
    assert report["new_slots"] <= len(unmatched)

    # guaranteed: every covered revealed example is matched afterwards; slots are only added,
    # so nothing matched before becomes unmatched
    revealed = report["revealed"]
    coverable = int(coverage.any(dim=0).sum())
    assert revealed["covered"] == coverable
    assert report["update"]["after"]["unmatched"] == len(unmatched) - coverable
    held = report["held_out"]
    assert held["after"]["unmatched"] <= held["before"]["unmatched"]
    if model.net.inh.pooling == "max":
        # with max pooling a covered example's own class scores >= 0, every other < 0
        assert revealed["accuracy_after"] == 100.0 * coverable / len(unmatched)
    assert revealed["accuracy_after"] >= revealed["accuracy_before"]


def test_slot_update_with_predicted_reference_freezes_matched_predictions(max_model, data):
    images, labels = data.test.images, data.test.labels
    for seed in range(3):
        report = continual_slot_update(max_model, images, labels, seed=seed,
                                       reference="revealed+predicted")
        update, revealed = report["update"], report["revealed"]
        n = report["n_update"]
        # only the revealed examples' predictions change (max pooling), and they all got right
        gained = round((revealed["accuracy_after"] - revealed["accuracy_before"]) * revealed["n"] / n, 4)
        assert update["after"]["accuracy"] == pytest.approx(update["before"]["accuracy"] + gained, abs=1e-3)
        assert revealed["accuracy_after"] == 100.0 and report["reference"] == "revealed+predicted"
        assert update["after"]["accuracy"] > update["before"]["accuracy"]
        # Forgetting: counted over both halves of what was correct before the update.
        correct = round((update["before"]["accuracy"] * n + report["held_out"]["before"]["accuracy"]
                         * report["n_held_out"]) / 100)
        assert report["retained"]["n"] == correct > 0
        assert 0 <= report["retained"]["accuracy_after"] <= 100
    with pytest.raises(ValueError, match="reference must be"):
        continual_slot_update(max_model, images, labels, reference="all")


def test_slot_update_curve_runs_from_before_to_after(model, data):
    report = continual_slot_update(model, data.test.images, data.test.labels, seed=1)
    curve = report["curve"]
    k = curve["new_slots"]
    assert k[0] == 0 and k[-1] == report["new_slots"]
    assert k == sorted(set(k))
    assert len(curve["accuracy_update"]) == len(curve["accuracy_held_out"]) == len(k)
    assert curve["accuracy_update"][0] == report["update"]["before"]["accuracy"]
    assert curve["accuracy_update"][-1] == report["update"]["after"]["accuracy"]
    assert curve["accuracy_held_out"][0] == report["held_out"]["before"]["accuracy"]
    assert curve["accuracy_held_out"][-1] == report["held_out"]["after"]["accuracy"]
    # fewer points: the same values at the chosen k (greedy order, log-spaced k)
    sparse = continual_slot_update(model, data.test.images, data.test.labels, seed=1, curve_points=3)
    ks = sparse["curve"]["new_slots"]
    assert len(ks) <= 3 and ks[0] == 0 and ks[-1] == report["new_slots"]
    if model.net.inh.pooling == "max":
        assert k == list(range(report["new_slots"] + 1))
        full = dict(zip(k, curve["accuracy_update"], strict=True))
        assert sparse["curve"]["accuracy_update"] == [full[i] for i in ks]


def test_curve_steps_are_log_spaced_with_both_ends():
    assert curve_steps(5, 30) == [0, 1, 2, 3, 4, 5]
    steps = curve_steps(1000, 30)
    assert steps[0] == 0 and steps[-1] == 1000 and len(steps) <= 30 and steps == sorted(set(steps))
    assert steps[1] == 1 and steps[len(steps) // 2] < 100  # dense at the start
    assert curve_steps(0, 30) == [0]
    assert curve_steps(50, 2) == [0, 50]


# -- OOD ---------------------------------------------------------------------------------
def brute_force_auroc(scores_in, scores_out):
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0
               for a, b in itertools.product(scores_in.tolist(), scores_out.tolist()))
    return 100.0 * wins / (len(scores_in) * len(scores_out))


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_the_pairwise_count(seed):
    g = torch.Generator().manual_seed(seed)
    scores_in = torch.randint(0, 8, (int(torch.randint(1, 40, (1,), generator=g)),), generator=g) * 0.5
    scores_out = torch.randint(-2, 6, (int(torch.randint(1, 40, (1,), generator=g)),), generator=g) * 0.5
    assert auroc(scores_in, scores_out) == pytest.approx(brute_force_auroc(scores_in, scores_out))
    continuous_in, continuous_out = torch.randn(30, generator=g) + 0.5, torch.randn(25, generator=g)
    assert auroc(continuous_in, continuous_out) == pytest.approx(
        brute_force_auroc(continuous_in, continuous_out))


def test_auroc_chance_and_perfect():
    scores = torch.randn(100, generator=torch.Generator().manual_seed(0))
    assert auroc(scores, scores.clone()) == pytest.approx(50.0)
    assert auroc(torch.full((7,), 0.3), torch.full((9,), 0.3)) == 50.0
    assert auroc(scores + 100, scores) == 100.0
    assert auroc(scores, scores + 100) == 0.0
    with pytest.raises(ValueError, match="both sides"):
        auroc(scores, scores[:0])


def test_noise_sets_are_deterministic_and_in_range():
    gauss = gaussian_noise(200, (1, 28, 28), seed=4)
    uniform = uniform_noise(200, (1, 28, 28), seed=4)
    for images, maker in ((gauss, gaussian_noise), (uniform, uniform_noise)):
        assert images.dtype == torch.uint8 and images.shape == (200, 1, 28, 28)
        assert torch.equal(images, maker(200, (1, 28, 28), seed=4))
        assert not torch.equal(images, maker(200, (1, 28, 28), seed=5))
    assert abs(gauss.float().mean().item() - 127.5) < 2 and gauss.max() == 255 and gauss.min() == 0
    assert abs(gauss.float().std().item() / 255 - 0.25) < 0.02  # clipping trims it a little
    assert abs(uniform.float().mean().item() - 127.5) < 2 and uniform.max() == 255


def test_grey_crops_are_seeded_luma_windows():
    g = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 256, (6, 3, 32, 32), generator=g, dtype=torch.uint8)
    crops = grey_crops(rgb, size=28, seed=1)
    assert crops.dtype == torch.uint8 and crops.shape == (6, 1, 28, 28)
    assert torch.equal(crops, grey_crops(rgb, size=28, seed=1))
    luma = 0.299 * rgb[:, 0].double() + 0.587 * rgb[:, 1].double() + 0.114 * rgb[:, 2].double()
    luma = (luma + 0.5 + 1e-9).floor().to(torch.uint8)  # rounded half up
    positions = set()
    for i in range(6):
        found = [(top, left) for top in range(5) for left in range(5)
                 if torch.equal(crops[i, 0], luma[i, top:top + 28, left:left + 28])]
        assert found, f"crop {i} is not a window of the luma image"
        positions.add(found[0])
    assert len(positions) > 1  # positions vary per image
    with pytest.raises(ValueError, match="cannot crop"):
        grey_crops(rgb[:, :, :20, :20], size=28)


def test_ood_report_and_class_incremental_report(max_model, data):
    model = max_model
    before = snapshot(model)
    noise = {"gaussian": gaussian_noise(100, (1, 28, 28), seed=0),
             "uniform": uniform_noise(100, (1, 28, 28), seed=0),
             "same": data.test.images[:100]}
    report = ood_report(model, data.test.images, noise)
    assert roundtrip(report) == report
    assert set(report["sets"]) == set(noise)
    margins = best_margins(model, data.test.images)
    assert report["in_distribution"]["unmatched"] == round(100 * (margins < 0).float().mean().item(), 4)
    for name, entry in report["sets"].items():
        assert 0 <= entry["unmatched"] <= 100 and 0 <= entry["auroc"] <= 100, name
        assert entry["auroc"] == round(auroc(margins, best_margins(model, noise[name])), 4)
    with pytest.raises(ValueError, match="shape"):
        ood_report(model, data.test.images, {"rgb": torch.zeros(3, 3, 28, 28, dtype=torch.uint8)})

    # class-incremental: trained on two classes, the other two are unseen
    seen = data.subset(CLASSES[:2])
    unseen = data.subset(CLASSES[2:])
    small = trained_inh(seen)
    split = class_incremental_report(small, seen.test.images, unseen.test.images,
                                     seen_labels=seen.test.labels)
    assert roundtrip(split) == split
    assert split["seen"]["n"] == len(seen.test) and split["unseen"]["n"] == len(unseen.test)
    assert split["unseen"]["unmatched"] >= split["seen"]["unmatched"]
    assert split["auroc"] > 50 and split["seen_accuracy"] > 50
    assert_unchanged(model, before)


# -- PGD -------------------------------------------------------------------------------
def test_pgd_stays_in_the_ball_and_lowers_accuracy(max_model, data):
    images = data.test.images[:120].float() / 255
    labels = data.test.labels[:120]
    before = snapshot(max_model)
    grads = [None if p.grad is None else p.grad.clone() for p in max_model.parameters()]
    adversarial = pgd_linf(max_model, images, labels, eps=0.1, steps=10, seed=0, batch_size=50)
    assert_unchanged(max_model, before)
    for parameter, grad in zip(max_model.parameters(), grads, strict=True):  # untouched
        assert (parameter.grad is None) if grad is None else torch.equal(parameter.grad, grad)
    assert (adversarial - images).abs().max() <= 0.1 + 1e-6
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    assert torch.equal(adversarial, pgd_linf(max_model, images, labels, 0.1, steps=10, seed=0,
                                             batch_size=120))  # seeded, batch-size free
    with torch.no_grad():
        clean_accuracy = (max_model(images).argmax(1) == labels).float().mean()
        attacked_accuracy = (max_model(adversarial).argmax(1) == labels).float().mean()
    assert attacked_accuracy < clean_accuracy
    assert torch.equal(pgd_linf(max_model, images, labels, eps=0.0), images)


def test_robustness_report_with_flags(max_model, data):
    images, labels = data.test.images[:100], data.test.labels[:100]
    flag = inh_flags(max_model)
    report = robustness_report(max_model, images, labels, eps_list=(0.0, 0.2), steps=5,
                               flag_fn=flag, batch_size=40)
    assert roundtrip(report) == report
    clean, at_zero, at_02 = report["clean"], report["attacks"][0], report["attacks"][1]
    assert at_zero == {**clean, "eps": 0.0}
    with torch.no_grad():
        predictions = max_model(images.float() / 255).argmax(1)
    assert clean["accuracy"] == round(100 * (predictions == labels).float().mean().item(), 4)
    assert clean["flagged"] == round(100 * (best_margins(max_model, images) < 0).float().mean().item(), 4)
    assert at_02["accuracy"] < clean["accuracy"]
    for entry in report["attacks"]:
        assert entry["accuracy_with_abstention"] == pytest.approx(100 - entry["wrong_unflagged"])
        assert entry["accuracy"] <= entry["accuracy_with_abstention"]
    plain = robustness_report(max_model, images, labels, eps_list=(0.2,), steps=5, batch_size=40)
    assert set(plain["attacks"][0]) == {"eps", "accuracy"} and not plain["flagging"]
    assert plain["attacks"][0]["accuracy"] == at_02["accuracy"]  # same seeds, same attack


def unit_vectors(degrees: list[float]) -> torch.Tensor:
    angles = torch.tensor(degrees).deg2rad()
    return torch.stack([angles.cos(), angles.sin()], dim=1)


def test_singleton_flags_mark_images_only_single_image_slots_match():
    """Slot A (0 deg) matches four images, B, C and D one each; image 6 is matched by A and D,
    image 5 by nothing."""
    layer = IncrementalNeuralHashing(2, 2)
    layer._set_slots(unit_vectors([0, 90, 45, 20]), torch.tensor([0, 1, 1, 0]),
                     torch.tensor([0.9, 0.99, 0.99, 0.999]))
    images = unit_vectors([0, 5, 10, 90, 45, 200, 20])
    flagged, unmatched, singleton = singleton_flags(layer.eval(), images, batch_size=3)
    assert singleton.tolist() == [False, True, True, True]
    assert flagged.tolist() == [False, False, False, True, True, False, False]
    assert unmatched.tolist() == [False, False, False, False, False, True, False]


def test_label_errors_evaluation_recomputes_the_flipped_images(tmp_path):
    data = synthetic(train_per_class=30, test_per_class=5)
    option = {"share": 0.05, "seed": 1}
    mean, std = mean_std(data.train)
    torch.manual_seed(0)
    model = build_classifier("inh", data.num_classes, mean, std, image_size=28)
    settings = TrainSettings(epochs=2, batch_size=64, optimizer={"name": "adam", "lr": 1e-3},
                             flip_labels=option)
    fit(model, data.train.images, data.train.labels, data.test.images, data.test.labels,
        settings, seed=0)
    save_dataset(data, tmp_path / "tensors.pt", {"source": "synthetic"})
    spec = {"name": "flipped", "classes": None, "training": {"flip_labels": option}}
    job = EvaluationJob(model=model.eval(), state={"spec": spec}, data=tmp_path / "tensors.pt", seed=0)
    report = roundtrip(evaluate_label_errors(job))
    flipped = flip_labels(data.train.labels, **option)[1]
    flagged, _, singleton = singleton_flags(model.net.inh, features_of(model, data.train.images))
    caught = int(flagged[flipped].sum())
    assert report["n_train"] == 120 and report["n_flipped"] == 6 == flipped.numel()
    assert report["singleton_slots"] == int(singleton.sum()) and report["flagged"] == int(flagged.sum())
    assert report["recall"] == round(100 * caught / 6, 4) and report["chance_precision"] == 5.0
    assert report["precision"] == (round(100 * caught / report["flagged"], 4)
                                   if report["flagged"] else 0.0)
    job.state["spec"]["training"] = {}
    with pytest.raises(ConfigError, match="set training: flip_labels in experiment 'flipped'"):
        evaluate_label_errors(job)
