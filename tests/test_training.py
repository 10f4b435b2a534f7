import copy
import os
import signal
from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from whitebox.augmentations import augment_batch
from whitebox.layers import GrowingLayer
from whitebox.models import build_classifier
from whitebox.training import TrainingDiverged, TrainingInterrupted, TrainSettings, fit
from whitebox.training.hooks import Hooks
from whitebox.training.interrupt import StopRequest
from whitebox.training.label_noise import flip_labels
from whitebox.training.loop import shuffled_labels
from whitebox.training.schedule import lr_factor


def toy_split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 1 images are bright in the top half, class 0 in the bottom half (flip-invariant)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    images = torch.randint(0, 60, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    images[labels == 1, :, :16, :] += 150
    images[labels == 0, :, 16:, :] += 150
    return images, labels


def train_once(tmp_path, epochs=2, checkpoint=None, lr=1e-3, seed=0, shuffle_labels=False):
    torch.manual_seed(seed)
    model = build_classifier("directional", 2, [0.3] * 3, [0.3] * 3)
    settings = TrainSettings(epochs=epochs, batch_size=32, optimizer={"name": "adam", "lr": lr},
                             augment=["hflip"], shuffle_labels=shuffle_labels)
    train_x, train_y = toy_split(256, 1)
    test_x, test_y = toy_split(128, 2)
    records, _ = fit(model, train_x, train_y, test_x, test_y, settings, seed=seed,
                     checkpoint_path=checkpoint, run_id="toy")
    return model, records


def test_learns_a_separable_toy_problem(tmp_path):
    _, records = train_once(tmp_path, epochs=3)
    assert records[-1].test_accuracy > 90
    assert len(records) == 3 and records[-1].epoch == 3


def test_shuffled_labels_keep_the_class_counts_and_break_the_task(tmp_path):
    labels = toy_split(256, 1)[1]
    shuffled = shuffled_labels(labels, seed=3)
    assert torch.equal(shuffled, shuffled_labels(labels, seed=3))
    assert torch.equal(shuffled.bincount(), labels.bincount())
    assert (shuffled != labels).float().mean() > 0.3
    # Trained on permuted labels, the separable toy problem is not learnt (chance is ~50 %).
    _, records = train_once(tmp_path, epochs=3, shuffle_labels=True)
    assert records[-1].test_accuracy < 75


def test_flipped_labels_change_a_seeded_share_to_another_class():
    labels = torch.arange(10).repeat(100)
    flipped, index = flip_labels(labels, share=0.01, seed=4)
    assert index.tolist() == sorted(index.tolist()) and len(set(index.tolist())) == 10
    changed = (flipped != labels).nonzero().flatten()
    assert torch.equal(changed, index)  # exactly those ten, each to another class in 0..9
    assert flipped.min() >= 0 and flipped.max() <= 9
    again, same = flip_labels(labels, share=0.01, seed=4)
    assert torch.equal(again, flipped) and torch.equal(same, index)
    assert not torch.equal(flip_labels(labels, share=0.01, seed=5)[1], index)


def test_same_seed_gives_identical_results(tmp_path):
    model_a, records_a = train_once(tmp_path)
    model_b, records_b = train_once(tmp_path)
    assert [r.train_loss for r in records_a] == [r.train_loss for r in records_b]
    for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_resume_from_checkpoint_matches_uninterrupted_run(tmp_path):
    checkpoint = tmp_path / "checkpoint.pt"
    train_once(tmp_path, epochs=1, checkpoint=checkpoint)  # "killed" after epoch 1
    assert checkpoint.exists()
    resumed, resumed_records = train_once(tmp_path, epochs=2, checkpoint=checkpoint)
    full, full_records = train_once(tmp_path, epochs=2)
    assert [r.train_loss for r in resumed_records] == [r.train_loss for r in full_records]
    for a, b in zip(resumed.state_dict().values(), full.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_checkpoint_of_another_run_is_ignored(tmp_path):
    checkpoint = tmp_path / "checkpoint.pt"
    train_once(tmp_path, epochs=1, checkpoint=checkpoint)
    torch.save({"run_id": "other"}, checkpoint)
    _, records = train_once(tmp_path, epochs=1, checkpoint=checkpoint)
    assert len(records) == 1


def test_nan_loss_stops_with_clear_error(tmp_path):
    with pytest.raises(TrainingDiverged, match="training.optimizer.lr"):
        train_once(tmp_path, epochs=1, lr=1e30)


def test_hflip_flips_about_half_and_exactly():
    images = torch.arange(4 * 3 * 2 * 2, dtype=torch.float32).view(4, 3, 2, 2).repeat(50, 1, 1, 1)
    out = augment_batch(images, ["hflip"], torch.Generator().manual_seed(0))
    flipped = (out != images).flatten(1).any(1)
    assert 60 < flipped.sum() < 140
    torch.testing.assert_close(out[flipped], images[flipped].flip(-1))
    with pytest.raises(ValueError, match="hflip"):
        augment_batch(images, ["rotate"], torch.Generator())


def test_schedules():
    assert lr_factor("constant", 5, 10) == 1.0
    assert lr_factor("cosine", 0, 10) == pytest.approx(1.0)
    assert lr_factor("cosine", 10, 10) == pytest.approx(0.0)
    assert lr_factor("onecycle", 2, 10) == pytest.approx(1.0)
    assert lr_factor("onecycle", 6, 10) == pytest.approx(0.5)


def test_translate_shifts_within_range_and_fills_zeros():
    images = torch.zeros(50, 1, 7, 7)
    images[:, :, 3, 3] = 1
    out = augment_batch(images, ["translate"], torch.Generator().manual_seed(0))
    positions = (out[:, 0] == 1).nonzero()[:, 1:]
    assert positions.shape == (50, 2)  # the pixel survives every shift of at most 2
    assert ((positions - 3).abs() <= 2).all()
    assert len({tuple(p) for p in positions.tolist()}) > 10
    assert out.sum() == 50


def test_tau_schedule_anneals_gumbel_layers_to_the_end_value():
    torch.manual_seed(0)
    model = build_classifier("gumbel2", 2, [0.3] * 3, [0.3] * 3)
    settings = TrainSettings(epochs=3, batch_size=64, optimizer={"name": "adam", "lr": 1e-3},
                             tau={"start": 1.0, "end": 0.1})
    train_x, train_y = toy_split(128, 1)
    seen = []
    fit(model, train_x, train_y, train_x, train_y, settings, seed=0,
        on_epoch=lambda record: seen.append(model.net.conv3.tau))
    assert seen[0] == pytest.approx(1.0) and seen[-1] == pytest.approx(0.1)
    assert seen[0] > seen[1] > seen[2]


# ------------------------------------------------------------- stop signals (SIGTERM, SIGINT)
class SignalAt(nn.Module):
    """A classifier that sends ``signal_number`` to this process in its ``at``-th forward pass
    in training mode (eval mode: ``mode="eval"``), to interrupt ``fit`` at a known step."""

    def __init__(self, net: nn.Module, at: int | None = None, mode: str = "train",
                 signal_number: int = signal.SIGTERM) -> None:
        super().__init__()
        self.net, self.at, self.mode, self.signal_number, self.calls = net, at, mode, signal_number, 0

    def forward(self, x):
        if self.training == (self.mode == "train"):
            self.calls += 1
            if self.calls == self.at:
                os.kill(os.getpid(), self.signal_number)
        return self.net(x)


class Redrawn(GrowingLayer):
    """A growing layer whose state is not in its state_dict (a mid-epoch save would lose it)."""

    def forward(self, x):
        return x


def interruptible_run(name: str, checkpoint, epochs: int = 2, at: int | None = None, mode="train",
                      signal_number=signal.SIGTERM, redrawn=False, model_args=None,
                      random_labels=False, device="cpu", **settings):
    """``name`` on the toy problem (8 steps per epoch), wrapped in SignalAt; ``redrawn`` adds
    a Redrawn growing layer; ``random_labels`` make INH grow and prune all the time."""
    torch.manual_seed(0)
    net = build_classifier(name, 2, [0.3] * 3, [0.3] * 3, image_size=32, **(model_args or {}))
    if redrawn:
        net.redrawn = Redrawn()
    model = SignalAt(net, at, mode, signal_number)
    settings = TrainSettings(epochs=epochs, batch_size=32, optimizer={"name": "adam", "lr": 1e-3},
                             schedule="cosine", **settings)
    train_x, train_y = toy_split(256, 1)
    if random_labels:
        train_y = torch.randint(0, 2, (256,), generator=torch.Generator().manual_seed(5))
    test_x, test_y = toy_split(128, 2)
    model, train_x, train_y, test_x, test_y = (t.to(device) for t in (model, train_x, train_y,
                                                                      test_x, test_y))
    records, _ = fit(model, train_x, train_y, test_x, test_y, settings, seed=0,
                     checkpoint_path=checkpoint, run_id="toy")
    return model, records


def without_time(records):
    return [{k: v for k, v in asdict(r).items() if k != "epoch_time_s"} for r in records]


@pytest.mark.parametrize(("name", "settings"), [
    ("directional", {"augment": ["hflip", "translate"]}),
    ("gumbel2", {"augment": ["hflip"], "tau": {"start": 1.0, "end": 0.1}}),  # global RNG
    # PGD's random starts come from the epoch's generator.
    ("directional", {"augment": ["hflip"], "adversarial": {"norm": "linf", "eps": 0.03, "steps": 1}}),
    # A growing layer: slots are added at every step and pruned by activation counters that
    # span the whole epoch (on this data 125 slots after epoch 2, 5 pruned).
    ("inh", {"model_args": {"lr": 2.0, "training_thresholds": "running"}, "random_labels": True}),
])
def test_sigterm_mid_epoch_checkpoint_resumes_bit_for_bit(tmp_path, name, settings):
    checkpoint = tmp_path / "checkpoint.pt"
    with pytest.raises(TrainingInterrupted) as stopped:
        interruptible_run(name, checkpoint, at=11, **settings)  # epoch 2, step 3
    assert stopped.value.exit_status == 143
    assert str(stopped.value) == (f"interrupted by SIGTERM in epoch 2/2 after step 3/8; "
                                  f"checkpoint written to {checkpoint}; rerun to continue")
    state = torch.load(checkpoint, weights_only=False)
    assert len(state["records"]) == 1
    assert (state["position"]["epoch"], state["position"]["step"]) == (1, 3)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler removed again

    resumed, resumed_records = interruptible_run(name, checkpoint, **settings)
    full, full_records = interruptible_run(name, None, **settings)
    assert without_time(resumed_records) == without_time(full_records)
    if name == "inh":
        assert [(r.slots, r.pruned) for r in full_records] == [(97, 0), (125, 5)]
    assert resumed.state_dict().keys() == full.state_dict().keys()
    for key, value in full.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sigterm_mid_epoch_on_cuda_saves_the_cuda_rng_and_resumes(tmp_path):
    """On CUDA the path runs and restores the device's generator (bitwise equality of the
    result is promised only on a CPU)."""
    checkpoint = tmp_path / "checkpoint.pt"
    settings = {"augment": ["hflip"], "tau": {"start": 1.0, "end": 0.1}, "device": "cuda"}
    with pytest.raises(TrainingInterrupted, match="after step 3/8"):
        interruptible_run("gumbel2", checkpoint, at=11, **settings)
    position = torch.load(checkpoint, weights_only=False)["position"]
    assert position["rng"]["cuda"] is not None and position["step"] == 3
    _, records = interruptible_run("gumbel2", checkpoint, **settings)
    assert [r.epoch for r in records] == [1, 2]


def test_epoch_checkpoint_without_position_key_still_resumes(tmp_path):
    checkpoint = tmp_path / "checkpoint.pt"
    with pytest.raises(TrainingInterrupted, match="after epoch 1/2"):
        interruptible_run("directional", checkpoint, at=1, mode="eval")
    state = torch.load(checkpoint, weights_only=False)
    del state["position"]  # as written before mid-epoch checkpoints existed
    torch.save(state, checkpoint)
    resumed, resumed_records = interruptible_run("directional", checkpoint)
    full, full_records = interruptible_run("directional", None)
    assert without_time(resumed_records) == without_time(full_records)
    for key, value in full.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key


def test_signal_during_evaluation_finishes_the_epoch_checkpoint_first(tmp_path):
    checkpoint = tmp_path / "checkpoint.pt"
    with pytest.raises(TrainingInterrupted, match=r"^interrupted by SIGINT after epoch 1/2; "
                       r"checkpoint written to .*; rerun to continue$") as stopped:
        interruptible_run("directional", checkpoint, at=1, mode="eval", signal_number=signal.SIGINT)
    assert stopped.value.exit_status == 130
    state = torch.load(checkpoint, weights_only=False)
    assert len(state["records"]) == 1 and state["position"] is None
    # In the last epoch the run is complete: it returns normally.
    _, records = interruptible_run("directional", tmp_path / "last.pt", epochs=1, at=1, mode="eval")
    assert len(records) == 1


def test_unknown_growing_layer_falls_back_to_the_epoch_checkpoint(tmp_path):
    checkpoint = tmp_path / "checkpoint.pt"
    with pytest.raises(TrainingInterrupted, match="no epoch has finished yet"):
        interruptible_run("directional", checkpoint, at=3, redrawn=True)
    assert not checkpoint.exists()
    with pytest.raises(TrainingInterrupted) as stopped:
        interruptible_run("directional", checkpoint, at=11, redrawn=True)
    assert str(stopped.value) == (
        f"interrupted by SIGTERM in epoch 2/2 after step 3/8; growing layers cannot be saved "
        f"mid-epoch, so the checkpoint of epoch 1 at {checkpoint} is kept; rerun to continue "
        f"(epoch 2 is redone)")
    state = torch.load(checkpoint, weights_only=False)
    assert len(state["records"]) == 1 and state["position"] is None


def test_repeated_sigterm_is_ignored_a_second_ctrl_c_stops_at_once():
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.signal_name == "SIGTERM"
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while already stopping: stop now
    assert signal.getsignal(signal.SIGINT) is before
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_train_settings_are_the_schemas_training_keys_with_its_defaults():
    from dataclasses import fields

    from whitebox.schema import block, defaults
    from whitebox.training.settings import TrainSettings

    assert sorted(f.name for f in fields(TrainSettings)) == sorted(block("$defs", "training")["properties"])
    settings = TrainSettings()
    for key, value in defaults("$defs", "training").items():
        assert getattr(settings, key) == value, key
    assert settings.shuffle_labels is False and settings.adversarial is None  # unset in the schema


def test_adversarial_batches_stay_in_the_ball_and_leave_batchnorm_statistics_alone():
    torch.manual_seed(0)
    model = build_classifier("positive_lenet", 2, [0.3] * 3, [0.3] * 3, positive=False).train()
    hooks = Hooks(model, TrainSettings(adversarial={"norm": "linf", "eps": 0.03, "steps": 3}))
    x, labels = toy_split(16, 1)
    images = x.float() / 255
    before = copy.deepcopy(model.state_dict())  # BatchNorm's running statistics and counters
    attacked = hooks.perturb(model, images, labels, torch.Generator().manual_seed(4))
    assert model.training
    for key, value in before.items():
        assert torch.equal(model.state_dict()[key], value), key
    assert 0.02 < (attacked - images).abs().max() <= 0.03 + 1e-6
    assert attacked.min() >= 0 and attacked.max() <= 1
    assert torch.equal(attacked, hooks.perturb(model, images, labels, torch.Generator().manual_seed(4)))
    with torch.no_grad():
        model.eval()
        assert F.cross_entropy(model(attacked), labels) > F.cross_entropy(model(images), labels)
    assert Hooks(model, TrainSettings()).perturb(model, images, labels, torch.Generator()) is images
