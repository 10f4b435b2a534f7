import json
import math

import pytest
import torch
from torch import nn

from whitebox.explain.gradients import class_gradients, target_gradients
from whitebox.explain.metrics import (
    alignment,
    class_specificity,
    evaluation_set,
    gradient_metrics,
    high_frequency_share,
    noise_stability,
    randomisation_cascade,
    rank_correlation,
    saliency_map,
    sparsity,
)
from whitebox.explain.noise import gaussian_noise
from whitebox.layers import PositiveConv2d
from whitebox.layers.base import Regularized
from whitebox.models import build_classifier

SHAPE = (3, 4, 4)
DIM = 3 * 4 * 4


def linear_model(weight: torch.Tensor) -> nn.Sequential:
    """f(x) = W x on flattened images: the gradient of logit k is W[k], whatever x."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(weight.shape[1], weight.shape[0], bias=False))
    with torch.no_grad():
        model[1].weight.copy_(weight)
    return model


def orthonormal_rows(k: int, d: int, seed: int = 0) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(d, k, generator=torch.Generator().manual_seed(seed)))
    return q.T.contiguous()


# --- gradients ---------------------------------------------------------------------------------

def test_class_gradients_for_chosen_classes_and_target_gradients_agree():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 2 * 2, 5))
    model.train()
    images = torch.rand(6, *SHAPE)
    every = class_gradients(model, images)
    chosen = class_gradients(model, images, [3, 1])
    assert every.shape == (5, 6, *SHAPE) and chosen.shape == (2, 6, *SHAPE)
    torch.testing.assert_close(chosen, every[[3, 1]])
    targets = torch.tensor([0, 4, 2, 2, 1, 3])
    own = target_gradients(model, images, targets)
    torch.testing.assert_close(own, every[targets, torch.arange(6)])
    assert model.training and all(p.grad is None for p in model.parameters())


# --- alignment ---------------------------------------------------------------------------------

def test_alignment_of_a_linear_model_is_the_cosine_with_its_weight_row():
    weight = torch.randn(3, DIM)
    images = torch.rand(5, *SHAPE)
    targets = torch.tensor([0, 1, 2, 1, 0])
    grads = target_gradients(linear_model(weight), images, targets)
    expected = torch.cosine_similarity(images.flatten(1).double(), weight[targets].double()).abs()
    torch.testing.assert_close(alignment(images, grads), expected)


def test_alignment_extremes():
    images = torch.rand(2, *SHAPE)
    torch.testing.assert_close(alignment(images, 2 * images), torch.ones(2, dtype=torch.float64))
    x = torch.zeros(1, *SHAPE)
    x[0, 0, 0, 0] = 1.0
    g = torch.zeros(1, *SHAPE)
    g[0, 1, 2, 3] = -4.0
    assert alignment(x, g).item() == 0.0
    assert alignment(x, torch.zeros_like(x)).item() == 0.0


# --- class specificity -------------------------------------------------------------------------

def test_class_specificity_known_answers():
    g = torch.randn(1, 2, *SHAPE)
    torch.testing.assert_close(class_specificity(g.expand(4, 2, *SHAPE)),
                               torch.zeros(2, dtype=torch.float64))
    # two classes with opposite gradients weigh the same pixels: as unspecific as identical ones
    torch.testing.assert_close(class_specificity(torch.cat([g, -g])), torch.zeros(2).double())
    orthogonal = orthonormal_rows(4, DIM).view(4, 1, *SHAPE)
    torch.testing.assert_close(class_specificity(orthogonal), torch.ones(1, dtype=torch.float64))
    two_orthogonal = orthonormal_rows(2, DIM).view(2, 1, *SHAPE)
    torch.testing.assert_close(class_specificity(two_orthogonal), torch.ones(1, dtype=torch.float64))
    torch.testing.assert_close(class_specificity(torch.cat([g, -2 * g, g])),
                               torch.zeros(2, dtype=torch.float64))
    # a zero gradient counts cosine 0 with every other
    zero_and_same = torch.cat([torch.zeros_like(g), g, g])
    torch.testing.assert_close(class_specificity(zero_and_same),
                               torch.full((2,), 1 - 2 / 6).double())


def test_class_specificity_of_a_linear_model_with_orthogonal_rows_is_one():
    model = linear_model(orthonormal_rows(4, DIM) * 3)
    grads = class_gradients(model, torch.rand(3, *SHAPE))
    torch.testing.assert_close(class_specificity(grads), torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError):
        class_specificity(grads[:1])


# --- noise stability ---------------------------------------------------------------------------

def test_noise_stability_is_one_for_a_linear_model():
    model = linear_model(torch.randn(3, DIM))
    noise = torch.rand(5, *SHAPE)
    grads = class_gradients(model, noise)  # (U=3, M=5, C, H, W)
    torch.testing.assert_close(noise_stability(grads), torch.ones(3, dtype=torch.float64))


def test_noise_stability_is_near_zero_for_independent_gradients_and_zero_for_constants():
    grads = torch.randn(2, 5, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert noise_stability(grads).abs().max().item() < 0.1
    constant = torch.ones(1, 3, *SHAPE)
    assert noise_stability(constant).item() == 0.0
    with pytest.raises(ValueError):
        noise_stability(grads[:, :1])


# --- saliency, rank correlation ----------------------------------------------------------------

def test_saliency_map_sums_absolute_channels():
    g = torch.tensor([[[[1.0, -2.0]], [[-3.0, 0.5]]]])  # (1, 2, 1, 2)
    assert torch.equal(saliency_map(g), torch.tensor([[[4.0, 2.5]]]))
    assert saliency_map(torch.randn(2, 5, 3, 4, 4)).shape == (2, 5, 4, 4)


def test_rank_correlation_known_answers():
    a = torch.rand(3, 6, 6) + 0.1
    one = torch.ones(3, dtype=torch.float64)
    torch.testing.assert_close(rank_correlation(a, a), one)
    torch.testing.assert_close(rank_correlation(a, -a), -one)
    torch.testing.assert_close(rank_correlation(a, a ** 3 + 5), one)
    assert torch.equal(rank_correlation(a, torch.ones_like(a)), torch.zeros(3, dtype=torch.float64))
    # ties get average ranks: [1, 1, 2, 3] ranks to [1.5, 1.5, 3, 4]
    tied = torch.tensor([[1.0, 1.0, 2.0, 3.0]])
    plain = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    expected = torch.corrcoef(torch.tensor([[1.5, 1.5, 3, 4], [1, 2, 3, 4]]).double())[0, 1]
    torch.testing.assert_close(rank_correlation(tied, plain)[0], expected)


# --- sparsity, spectrum ------------------------------------------------------------------------

def test_sparsity_known_answers():
    one_hot = torch.zeros(1, *SHAPE)
    one_hot[0, 2, 1, 3] = -5.0
    assert sparsity(one_hot).item() == pytest.approx(1.0)
    assert sparsity(torch.full((1, *SHAPE), 0.3)).item() == pytest.approx(0.0, abs=1e-12)
    assert sparsity(torch.zeros(1, *SHAPE)).item() == 0.0
    half = torch.zeros(1, 1, 1, 4)
    half[..., :2] = 1.0  # ||g||_1 / ||g||_2 = sqrt(2), n = 4
    assert sparsity(half).item() == pytest.approx((2 - math.sqrt(2)) / (2 - 1))


def test_high_frequency_share_known_answers():
    y, x = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    checkerboard = ((-1.0) ** (y + x)).expand(1, 3, 8, 8)
    smooth = torch.cos(2 * math.pi * x / 8).expand(1, 3, 8, 8)
    assert high_frequency_share(torch.ones(1, 3, 8, 8)).item() == 0.0
    assert high_frequency_share(checkerboard).item() == pytest.approx(1.0)
    assert high_frequency_share(smooth).item() == pytest.approx(0.0, abs=1e-12)
    assert high_frequency_share(torch.zeros(1, 3, 8, 8)).item() == 0.0
    # x-Nyquist stripes sit at r = 1: above the default cutoff, not above cutoff 1
    stripes = ((-1.0) ** x).expand(1, 1, 8, 8)
    assert high_frequency_share(stripes).item() == pytest.approx(1.0)
    assert high_frequency_share(stripes, cutoff=1.0).item() == pytest.approx(0.0, abs=1e-12)


# --- randomisation cascade ---------------------------------------------------------------------

def two_linear_layers() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(DIM, 16, bias=False), nn.Linear(16, 3, bias=False))


def test_cascade_leaves_the_model_and_global_rng_alone_and_is_deterministic():
    model = two_linear_layers()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.rand(6, *SHAPE)
    targets = torch.tensor([0, 1, 2, 0, 1, 2])
    rng = torch.get_rng_state()
    first = randomisation_cascade(model, images, targets, steps=2, seed=3)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert first == randomisation_cascade(model, images, targets, steps=2, seed=3)
    assert first != randomisation_cascade(model, images, targets, steps=2, seed=4)


def test_cascade_of_two_linear_layers_goes_top_down_and_decorrelates():
    model = two_linear_layers()
    images = torch.rand(6, *SHAPE)
    targets = torch.tensor([0, 1, 2, 0, 1, 2])
    steps = randomisation_cascade(model, images, targets, steps=2)
    assert [step["layers"] for step in steps] == [["2"], ["1"]]
    assert all(-1 <= step["rank_correlation"] <= 1 for step in steps)
    assert steps[-1]["rank_correlation"] < 0.9
    json.dumps(steps)
    # more steps than layers: one step per layer; steps=1: everything at once
    assert [s["layers"] for s in randomisation_cascade(model, images, targets, steps=10)] == [["2"], ["1"]]
    assert [s["layers"] for s in randomisation_cascade(model, images, targets, steps=1)] == [["2", "1"]]


def test_cascade_splits_into_nearly_equal_blocks_output_first():
    torch.manual_seed(0)
    model = nn.Sequential(PositiveConv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 8),
                          nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 2))
    steps = randomisation_cascade(model, torch.rand(3, *SHAPE), [0, 1, 1], steps=2)
    assert [step["layers"] for step in steps] == [["6", "5", "4"], ["3", "0"]]



class Caching(nn.Linear):
    """Keeps its last output, graph attached, as prototype layers keep ``min_distances``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.last = super().forward(x.flatten(1))
        return self.last


def test_cascade_copies_models_that_cache_graph_attached_tensors():
    model = Caching(DIM, 2)
    images = torch.rand(2, *SHAPE)
    model(images.requires_grad_(True))  # deepcopy refuses such a non-leaf tensor
    steps = randomisation_cascade(model, images, [0, 1])
    assert [step["layers"] for step in steps] == [[""]]
    assert model.last.grad_fn is not None


class NonNegative(Regularized):
    """A constrained layer without its own init_weights: the cascade refills it N(mean, std)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(3, DIM, generator=torch.Generator().manual_seed(0)))

    def regularize_weights(self) -> None:
        with torch.no_grad():
            self.weight.clamp_(min=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T


def test_cascade_refills_layers_without_init_and_regularizes_them():
    layer = NonNegative()
    seen: list[tuple[float, float]] = []  # the hook's closure is shared with the cascade's copy
    layer.register_forward_hook(lambda m, _a, _o: seen.append((m.weight.min().item(), m.weight.std().item())))
    steps = randomisation_cascade(layer, torch.rand(2, *SHAPE), [0, 2], steps=3)
    assert [step["layers"] for step in steps] == [[""]]
    assert steps[0]["rank_correlation"] < 0.5
    (original_min, _), (randomised_min, randomised_std) = seen
    assert original_min > 0.0 and randomised_min == 0.0  # N(0.5, 0.29) draws < 0, then clamped
    assert randomised_std > 0.1
    assert torch.equal(layer.weight, NonNegative().weight)


# --- everything for one model ------------------------------------------------------------------

def test_gradient_metrics_on_a_whitebox_model():
    torch.manual_seed(0)
    model = build_classifier("directional", 2, [0.5] * 3, [0.25] * 3, n_features=16).train()
    twin = build_classifier("directional", 2, [0.5] * 3, [0.25] * 3, n_features=16).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.rand(8, 3, 32, 32)
    labels = torch.tensor([0, 1] * 4)
    noise = torch.rand(4, 3, 32, 32)
    result = gradient_metrics(model, images, labels, noise, cascade_steps=3, curve_steps=4,
                              twin=twin)
    assert set(result) == {
        "alignment", "sparsity", "high_frequency_share", "class_specificity", "noise_stability",
        "noise_alignment", "model_randomisation", "model_randomisation_mean",
        "label_randomisation", "deletion_auc", "insertion_auc", "deletion_auc_random",
        "insertion_auc_random", "n_images", "n_noise", "n_classes_used"}
    for key in ("alignment", "noise_alignment", "sparsity", "high_frequency_share",
                "deletion_auc", "insertion_auc", "deletion_auc_random", "insertion_auc_random"):
        assert 0.0 <= result[key] <= 1.0, key
    assert 0.0 <= result["class_specificity"] <= 1.0
    for key in ("noise_stability", "model_randomisation_mean", "label_randomisation"):
        assert -1.0 <= result[key] <= 1.0, key
    assert len(result["model_randomisation"]) == 3
    assert (result["n_images"], result["n_noise"], result["n_classes_used"]) == (8, 4, 2)
    json.dumps(result)
    assert model.training and not twin.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in [*model.parameters(), *twin.parameters()])
    without_twin = gradient_metrics(model, images, labels, noise, max_classes=1, cascade_steps=1,
                                    curve_steps=2)
    assert without_twin["label_randomisation"] is None and without_twin["class_specificity"] is None
    assert without_twin["n_classes_used"] == 1


def test_evaluation_set_takes_the_first_test_images_and_fixed_noise():
    test_images = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8)
    test_labels = torch.arange(10)
    images, labels, noise = evaluation_set(test_images, test_labels, n_images=6, n_noise=3,
                                           noise_std=0.25, noise_seed=4)
    assert images.dtype == torch.float32 and torch.equal(images, test_images[:6].float() / 255)
    assert torch.equal(labels, test_labels[:6])
    assert torch.equal(noise, gaussian_noise(3, (3, 8, 8), seed=4, std=0.25))
