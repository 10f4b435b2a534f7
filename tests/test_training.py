import pytest
import torch

from whitebox.models import build_classifier
from whitebox.training import TrainingDiverged, TrainSettings, fit
from whitebox.training.augment import augment_batch
from whitebox.training.schedule import lr_factor


def toy_split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 1 images are bright in the top half, class 0 in the bottom half (flip-invariant)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    images = torch.randint(0, 60, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    images[labels == 1, :, :16, :] += 150
    images[labels == 0, :, 16:, :] += 150
    return images, labels


def train_once(tmp_path, epochs=2, checkpoint=None, lr=1e-3, seed=0):
    torch.manual_seed(seed)
    model = build_classifier("directional", 2, [0.3] * 3, [0.3] * 3)
    settings = TrainSettings(epochs=epochs, batch_size=32, optimizer={"name": "adam", "lr": lr},
                             augment=["hflip"])
    train_x, train_y = toy_split(256, 1)
    test_x, test_y = toy_split(128, 2)
    records, _ = fit(model, train_x, train_y, test_x, test_y, settings, seed=seed,
                     checkpoint_path=checkpoint, run_id="toy")
    return model, records


def test_learns_a_separable_toy_problem(tmp_path):
    _, records = train_once(tmp_path, epochs=3)
    assert records[-1].test_accuracy > 90
    assert len(records) == 3 and records[-1].epoch == 3


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
