import math

import pytest
import torch
from torch import nn

from whitebox.data.synthetic import make_synthetic, synthetic_masks
from whitebox.explain.faithfulness import deletion_insertion
from whitebox.explain.gradients import target_gradients
from whitebox.explain.metrics import saliency_map
from whitebox.training import TrainSettings, fit

KEYS = ("deletion_auc", "insertion_auc", "deletion_auc_random", "insertion_auc_random")


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def two_class_linear(weight: torch.Tensor, offset: float = 0.0) -> nn.Sequential:
    """Logits ``(-z/2, z/2)`` with ``z = <weight, x> - offset``: p(class 1) = sigmoid(z)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(weight.numel(), 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([-weight.flatten() / 2, weight.flatten() / 2]))
        model[1].bias.copy_(torch.tensor([offset / 2, -offset / 2]))
    return model


def curves(model, images, labels, **options):
    saliency = saliency_map(target_gradients(model, images, labels))
    return deletion_insertion(model, images, labels, saliency, **options)


# --- known answers -----------------------------------------------------------------------------

def test_four_pixels_by_hand():
    """Weights 4, 2, 1, 0 on a white 2x2 image, baseline 0: the saliency order is the weight
    order, and 5 steps remove 0, 1, 2, 3, 4 pixels."""
    model = two_class_linear(torch.tensor([4.0, 2.0, 1.0, 0.0]))
    result = curves(model, torch.ones(1, 1, 2, 2), [1], baseline=torch.zeros(1), steps=5, seed=0)
    deletion = [sigmoid(z) for z in (7, 3, 1, 0, 0)]
    insertion = [sigmoid(z) for z in (0, 4, 6, 7, 7)]
    trapezoid = lambda p: 0.25 * (p[0] / 2 + sum(p[1:-1]) + p[-1] / 2)  # noqa: E731
    assert result["deletion_auc"] == pytest.approx(trapezoid(deletion), abs=1e-6)
    assert result["insertion_auc"] == pytest.approx(trapezoid(insertion), abs=1e-6)


def test_equal_weights_give_every_order_the_same_curve_over_the_pixels_actually_replaced():
    """With equal weights the random order scores as the saliency order. 4 steps over 4 pixels
    replace round(4/3) = 1 and round(8/3) = 3 pixels: the areas use fractions 0, 1/4, 3/4, 1."""
    model = two_class_linear(torch.ones(4))
    result = curves(model, torch.ones(3, 1, 2, 2), [1, 1, 1], baseline=torch.zeros(1), steps=4,
                    seed=5)
    segments = ((0.25, 0, 1), (0.5, 1, 3), (0.25, 3, 4))
    deletion = sum(w * (sigmoid(4 - a) + sigmoid(4 - b)) / 2 for w, a, b in segments)
    insertion = sum(w * (sigmoid(a) + sigmoid(b)) / 2 for w, a, b in segments)
    for key, expected in (("deletion_auc", deletion), ("insertion_auc", insertion)):
        assert result[key] == pytest.approx(expected, abs=1e-6)
        assert result[f"{key}_random"] == pytest.approx(expected, abs=1e-6)


@pytest.fixture(scope="module")
def one_pixel_task():
    """1x8x8 noise images whose class is pixel (3, 4): 1 for class 1, 0 for class 0; a linear
    model whose logit difference is 20 (x[3, 4] - baseline), so a deleted (baseline) pixel
    leaves p = 1/2 exactly."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(40, 1, 8, 8, generator=generator)
    labels = torch.arange(40) % 2
    images[:, 0, 3, 4] = labels.float()
    baseline = images.mean(dim=(0, 2, 3))
    weight = torch.zeros(1, 8, 8)
    weight[0, 3, 4] = 20.0
    return two_class_linear(weight, offset=20 * baseline.item()), images, labels, baseline


def test_the_deciding_pixel_first_gives_the_best_curves_and_random_orders_do_worse(one_pixel_task):
    model, images, labels, baseline = one_pixel_task
    saliency = saliency_map(target_gradients(model, images, labels))
    assert (saliency.flatten(1).argmax(dim=1) == 3 * 8 + 4).all()
    result = deletion_insertion(model, images, labels, saliency, baseline=baseline, steps=16,
                                seed=0)
    # The first step (round(64/15) = 4 pixels) removes or inserts the deciding pixel: the
    # curves are p at 0 and 1/2 after (deletion), 1/2 at 0 and p after (insertion).
    first = 4 / 64
    p = torch.sigmoid(20 * (images[:, 0, 3, 4] - baseline).abs()).to(torch.float64)
    best_deletion = (0.5 + (p - 0.5) * first / 2).mean().item()
    best_insertion = (p - (p - 0.5) * first / 2).mean().item()
    assert result["deletion_auc"] == pytest.approx(best_deletion, abs=1e-5)
    assert result["insertion_auc"] == pytest.approx(best_insertion, abs=1e-5)
    # A random order keeps the pixel for half the curve on average: both areas near 3/4.
    assert result["deletion_auc_random"] > result["deletion_auc"] + 0.15
    assert result["insertion_auc_random"] < result["insertion_auc"] - 0.15


def test_batching_seeds_and_model_state(one_pixel_task):
    model, images, labels, baseline = one_pixel_task
    images, labels = images[:12], labels[:12]
    model.train()
    saliency = saliency_map(target_gradients(model, images, labels))
    options = {"baseline": baseline, "steps": 6}
    reference = deletion_insertion(model, images, labels, saliency, seed=1, **options)
    assert set(reference) == set(KEYS)
    for batch_size in (5, 7, 10_000):
        other = deletion_insertion(model, images, labels, saliency, seed=1, batch_size=batch_size,
                                   **options)
        assert other == pytest.approx(reference, abs=1e-6)
    assert deletion_insertion(model, images, labels, saliency, seed=1, **options) == reference
    reseeded = deletion_insertion(model, images, labels, saliency, seed=2, **options)
    assert reseeded["deletion_auc_random"] != reference["deletion_auc_random"]
    assert reseeded["deletion_auc"] == reference["deletion_auc"]
    assert model.training and all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="at least 2 steps"):
        deletion_insertion(model, images, labels, saliency, baseline=baseline, steps=1, seed=0)


# --- a trained model on the synthetic shapes ---------------------------------------------------

SYNTHETIC = {"classes": ["disc", "square", "cross"], "image_size": 16, "train_per_class": 64,
             "test_per_class": 20}


def test_synthetic_masks_mark_the_drawn_shapes():
    data = make_synthetic("shapes", **SYNTHETIC)
    train_masks, test_masks = synthetic_masks(**SYNTHETIC)
    for split, masks in ((data.train, train_masks), (data.test, test_masks)):
        assert masks.dtype == torch.bool and masks.shape == (len(split), 16, 16)
        brightest = split.images.amax(dim=1).float()  # shapes: value >= 0.65, background <= 0.35
        inside = (brightest * masks).sum(dim=(1, 2)) / masks.sum(dim=(1, 2))
        outside = (brightest * ~masks).sum(dim=(1, 2)) / (~masks).sum(dim=(1, 2))
        assert (inside > outside + 60).all()


def test_a_trained_net_looks_at_the_shape_and_its_saliency_beats_random_orders():
    """A check of the metrics on data whose evidence is known, not a result of the paper."""
    data = make_synthetic("shapes", **SYNTHETIC)
    _, masks = synthetic_masks(**SYNTHETIC)
    images, labels = data.test.images.float() / 255, data.test.labels
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(16, 3))

    def share_inside() -> float:
        saliency = saliency_map(target_gradients(model, images, labels))
        return ((saliency * masks).sum(dim=(1, 2)) / saliency.sum(dim=(1, 2))).mean().item()

    untrained = share_inside()
    settings = TrainSettings(epochs=3, batch_size=32, optimizer={"name": "adam", "lr": 1e-2})
    records, _ = fit(model, data.train.images, data.train.labels, data.test.images,
                     data.test.labels, settings, seed=0)
    assert records[-1].test_accuracy > 70
    area = masks.float().mean().item()
    trained = share_inside()
    assert trained > 2 * area and trained > untrained + 0.1
    result = curves(model, images, labels, baseline=images.mean(dim=(0, 2, 3)), steps=16, seed=0)
    assert result["deletion_auc"] < result["deletion_auc_random"] - 0.05
    assert result["insertion_auc"] > result["insertion_auc_random"] + 0.05
