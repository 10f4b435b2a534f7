"""IterNorm, DecorrelatedBatchNorm, PercentileNorm and the Parallel container."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from whitebox.layers.normalization import DecorrelatedBatchNorm, IterNorm, PercentileNorm
from whitebox.layers.parallel import Parallel, copies


def correlated_data(n: int = 512, d: int = 8, seed: int = 0, spread: float = 4.0) -> torch.Tensor:
    """``z @ A`` with A = U diag(s) V, s from 1 to ``spread``: correlated, with a known conditioning."""
    gen = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(d, d, generator=gen))
    v, _ = torch.linalg.qr(torch.randn(d, d, generator=gen))
    a = u @ torch.diag(torch.linspace(1.0, spread, d)) @ v
    return torch.randn(n, d, generator=gen) @ a + 3.0


def zca_reference(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Closed-form ZCA whitening ``Sigma^{-1/2} (x - mu)`` in float64, Sigma = eps I + cov."""
    xd = x.double()
    centred = xd - xd.mean(dim=0)
    sigma = torch.eye(x.shape[1], dtype=torch.float64) * eps + centred.T @ centred / x.shape[0]
    eigenvalues, eigenvectors = torch.linalg.eigh(sigma)
    return centred @ (eigenvectors * eigenvalues.rsqrt()) @ eigenvectors.T


def covariance(y: torch.Tensor) -> torch.Tensor:
    centred = y.double() - y.double().mean(dim=0)
    return centred.T @ centred / y.shape[0]


# ---------------------------------------------------------------- IterNorm


def test_iternorm_whitens_correlated_data():
    x = correlated_data()
    assert (covariance(x) - torch.diag(covariance(x).diagonal())).abs().max() > 0.5  # really correlated
    y = IterNorm(8, T=10)(x)
    assert torch.allclose(covariance(y), torch.eye(8, dtype=torch.float64), atol=1e-3)


def test_iternorm_converges_to_closed_form_zca_as_t_grows():
    x = correlated_data(spread=6.0)
    reference = zca_reference(x)
    errors = [(IterNorm(8, T=t)(x).double() - reference).abs().max().item() for t in (1, 3, 5, 10, 20)]
    assert all(later < earlier for earlier, later in zip(errors[:3], errors[1:4], strict=True)), errors
    assert errors[3] < 1e-2, errors
    assert errors[4] < 1e-4, errors


def test_iternorm_stays_stable_on_ill_conditioned_data():
    # the literal P <- 1.5 P - 0.5 P^3 Sigma_N diverges here in float32 after ~10 steps
    x = correlated_data(spread=100.0)
    y = IterNorm(8, T=40)(x)
    assert torch.isfinite(y).all()
    assert torch.allclose(y.double(), zca_reference(x), atol=1e-2)


def test_iternorm_t0_only_centres_and_scales_by_trace():
    x = correlated_data()
    y = IterNorm(8, T=0)(x)
    centred = x - x.mean(dim=0)
    trace = (centred.T @ centred / x.shape[0]).trace() + 8 * 1e-5
    assert torch.allclose(y, centred / trace.sqrt(), atol=1e-5)


def test_iternorm_groups_whiten_each_block_separately():
    x = torch.cat([correlated_data(seed=1, d=4), correlated_data(seed=2, d=4)], dim=1)
    layer = IterNorm(8, num_groups=2, T=10)
    assert layer.group_size == 4
    cov = covariance(layer(x))
    eye = torch.eye(4, dtype=torch.float64)
    assert torch.allclose(cov[:4, :4], eye, atol=1e-3)
    assert torch.allclose(cov[4:, 4:], eye, atol=1e-3)
    assert IterNorm(8, group_size=2).num_groups == 4


@pytest.mark.parametrize("cls", [IterNorm, DecorrelatedBatchNorm])
def test_bad_grouping_is_rejected(cls):
    with pytest.raises(ValueError, match="split"):
        cls(8, num_groups=3)
    with pytest.raises(ValueError, match="not both"):
        cls(8, num_groups=2, group_size=4)


# ---------------------------------------------------------------- DBN


def test_dbn_equals_closed_form_zca():
    x = correlated_data(spread=20.0)
    layer = DecorrelatedBatchNorm(8)
    y = layer(x)
    assert torch.allclose(y.double(), zca_reference(x), atol=1e-4)
    assert torch.allclose(covariance(y), torch.eye(8, dtype=torch.float64), atol=1e-4)
    whitening = layer.running_wm[0]  # momentum 0.1 from identity: still symmetric
    assert torch.allclose(whitening, whitening.T, atol=1e-6)


def test_dbn_whitening_matrix_is_symmetric():
    x = correlated_data()
    layer = DecorrelatedBatchNorm(8, momentum=1.0)
    layer(x)
    whitening = layer.running_wm[0]
    assert torch.allclose(whitening, whitening.T, atol=1e-5)
    assert not torch.allclose(whitening, torch.diag(whitening.diagonal()), atol=1e-2)  # ZCA, not BN


# ---------------------------------------------------------------- both whitening layers


def images(n: int = 64, channels: int = 8, seed: int = 0) -> torch.Tensor:
    """Correlated 4-D input: a channel-mixed random feature map."""
    gen = torch.Generator().manual_seed(seed)
    mix = torch.eye(channels) + 0.5 * torch.randn(channels, channels, generator=gen)
    z = torch.randn(n, channels, 6, 6, generator=gen)
    return torch.einsum("nchw,cd->ndhw", z, mix)


@pytest.mark.parametrize("cls", [IterNorm, DecorrelatedBatchNorm])
def test_whitening_on_4d_input_uses_spatial_positions(cls):
    x = images()
    kwargs = {"T": 15} if cls is IterNorm else {}
    y = cls(8, **kwargs)(x)
    assert y.shape == x.shape
    flat = y.permute(0, 2, 3, 1).reshape(-1, 8)
    assert torch.allclose(covariance(flat), torch.eye(8, dtype=torch.float64), atol=1e-3)
    assert torch.allclose(
        y.double(),
        zca_reference(x.permute(0, 2, 3, 1).reshape(-1, 8)).reshape(64, 6, 6, 8).permute(0, 3, 1, 2),
        atol=1e-3,
    )


@pytest.mark.parametrize("cls", [IterNorm, DecorrelatedBatchNorm])
@pytest.mark.parametrize("four_d", [False, True])
def test_whitening_eval_uses_running_stats(cls, four_d):
    x = images() if four_d else correlated_data()
    layer = cls(8, num_groups=2, momentum=1.0)
    train_out = layer(x)
    layer.eval()
    eval_out = layer(x)
    assert torch.allclose(eval_out, train_out, atol=1e-4)  # momentum 1: running = last batch
    single = layer(x[3:4])
    assert torch.allclose(single, eval_out[3:4], atol=1e-5)  # no dependence on the batch
    assert torch.equal(layer(x[3:4]), single)  # deterministic


@pytest.mark.parametrize("cls", [IterNorm, DecorrelatedBatchNorm])
def test_running_stats_follow_momentum(cls):
    layer = cls(8, momentum=0.1)
    x = correlated_data()
    layer(x)
    assert torch.allclose(layer.running_mean.view(8), 0.1 * x.mean(dim=0), atol=1e-5)
    before = layer.running_wm.clone()
    with torch.no_grad():
        layer.eval()
        layer(x)
    assert torch.equal(layer.running_wm, before)  # eval never updates


@pytest.mark.parametrize("cls", [IterNorm, DecorrelatedBatchNorm])
def test_whitening_gradients_flow(cls):
    x = images(n=16).requires_grad_()
    layer = cls(8, num_groups=2, affine=True)
    (layer(x) * torch.randn(16, 8, 6, 6)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert layer.weight.grad is not None and layer.bias.grad is not None


def test_iternorm_gradcheck():
    x = correlated_data(n=12, d=3).double().requires_grad_()
    layer = IterNorm(3, T=4).double()
    assert torch.autograd.gradcheck(layer, (x,))


def test_whitening_keeps_half_precision_dtype():
    x = images(n=8).bfloat16()
    y = IterNorm(8)(x)
    assert y.dtype == torch.bfloat16 and torch.isfinite(y.float()).all()


# ---------------------------------------------------------------- PercentileNorm


@pytest.mark.parametrize("percent", [1.0, 10.0, 25.0, 50.0])
@pytest.mark.parametrize("four_d", [False, True])
def test_percentile_norm_units_fire_on_at_most_k_percent(percent, four_d):
    x = images(n=100, channels=6) if four_d else torch.randn(500, 6) * torch.arange(1, 7) + 5
    layer = PercentileNorm(6, percent=percent)
    y = torch.relu(layer(x))
    fraction = (y > 0).float().movedim(1, 0).reshape(6, -1).mean(dim=1)
    assert (fraction <= percent / 100 + 1e-6).all(), fraction
    assert (fraction >= percent / 100 - 0.01).all(), fraction  # and not far fewer (no ties here)


def test_percentile_norm_with_ties_never_exceeds_k():
    x = torch.zeros(100, 2)
    x[:30, 0] = 1.0  # 30 % of the batch tied at the top
    y = PercentileNorm(2, percent=10)(x)
    assert ((y > 0).float().mean(dim=0) <= 0.1).all()


def test_percentile_norm_eval_uses_running_threshold():
    layer = PercentileNorm(4, percent=20, momentum=1.0)
    x = torch.randn(200, 4)
    train_out = layer(x)
    layer.eval()
    assert torch.allclose(layer(x), train_out)
    assert torch.allclose(layer(x[:1]), train_out[:1])  # no batch dependence
    layer.train()
    layer.momentum = 0.1
    layer(x + 10)
    assert torch.allclose(layer.running_threshold, layer.batch_threshold(x.T) + 1.0, atol=1e-5)


def test_percentile_norm_gradients_flow():
    x = torch.randn(32, 4, 3, 3, requires_grad=True)
    torch.relu(PercentileNorm(4, percent=30)(x)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_percentile_norm_rejects_bad_percent():
    with pytest.raises(ValueError, match="percent"):
        PercentileNorm(4, percent=120)


# ---------------------------------------------------------------- Parallel


def test_parallel_concat_shapes():
    layer = Parallel([nn.Linear(5, 3), nn.Linear(5, 4), nn.Linear(5, 2)])
    assert layer(torch.randn(7, 5)).shape == (7, 9)
    convs = Parallel([nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 6, 5, padding=2)])
    assert convs(torch.randn(2, 3, 8, 8)).shape == (2, 10, 8, 8)


def test_parallel_concat_rejects_mismatched_branches():
    layer = Parallel([nn.Conv2d(3, 4, 3), nn.Conv2d(3, 4, 3, padding=1)])
    with pytest.raises(ValueError, match="outside dim 1"):
        layer(torch.randn(2, 3, 8, 8))


def test_parallel_softmaxpool_tends_to_max_and_mean():
    torch.manual_seed(0)
    branches = copies(lambda: nn.Linear(5, 3), 4)
    x = torch.randn(6, 5)
    outputs = torch.stack([branch(x) for branch in branches])
    cold = Parallel(branches, combine="softmaxpool", temperature=1e-4)
    hot = Parallel(branches, combine="softmaxpool", temperature=1e5)
    assert cold(x).shape == (6, 3)
    assert torch.allclose(cold(x), outputs.max(dim=0).values, atol=1e-5)
    assert torch.allclose(hot(x), outputs.mean(dim=0), atol=1e-4)
    middle = Parallel(branches, combine="softmaxpool")(x)
    assert (middle <= outputs.max(dim=0).values + 1e-6).all()
    assert (middle >= outputs.mean(dim=0) - 1e-6).all()  # soft max lies between mean and max


def test_parallel_softmaxpool_rejects_mismatched_shapes():
    layer = Parallel([nn.Linear(5, 3), nn.Linear(5, 4)], combine="softmaxpool")
    with pytest.raises(ValueError, match="identical shapes"):
        layer(torch.randn(2, 5))


def test_copies_are_independently_initialised():
    from_builder = copies(lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), 3)
    template = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4))
    from_template = copies(template, 3)
    for group in (from_builder, from_template):
        weights = [m[0].weight for m in group]
        assert len({id(w) for w in weights}) == 3
        assert not torch.allclose(weights[0], weights[1]) and not torch.allclose(weights[1], weights[2])
    assert all(m is not template for m in from_template)
    shared = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="same module"):
        copies(lambda: shared, 2)


def test_parallel_builder_with_n():
    layer = Parallel(lambda: nn.Linear(5, 2), n=4, combine="concat")
    assert len(layer.branches) == 4 and layer(torch.randn(3, 5)).shape == (3, 8)
    with pytest.raises(ValueError, match="needs n"):
        Parallel(lambda: nn.Linear(5, 2))
    with pytest.raises(ValueError, match="combine"):
        Parallel([nn.Linear(5, 2)], combine="sum")


@pytest.mark.parametrize("combine", ["concat", "softmaxpool"])
def test_parallel_gradients_reach_every_branch(combine):
    layer = Parallel(
        lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten()),
        n=3,
        combine=combine,
        temperature=5.0,
    )
    x = torch.randn(4, 3, 6, 6, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for branch in layer.branches:
        assert branch[0].weight.grad is not None and branch[0].weight.grad.abs().sum() > 0
