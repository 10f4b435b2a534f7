import pytest
import torch
import torch.nn.functional as F
from torch import nn

from whitebox.layers.base import regularize
from whitebox.layers.gumbel import GumbelConv2d, annealed_tau, conv2d_parameter_count, gumbel_topk
from whitebox.layers.positive import PositiveConv2d


@pytest.mark.parametrize("topk", [1, 2, 4])
def test_gumbel_hard_forward_selects_exactly_topk_channels(topk):
    torch.manual_seed(0)
    layer = GumbelConv2d(6, 5, 3, hard=True, topk=topk).train()
    for _ in range(3):
        mask = layer.selection()
        assert mask.shape == (5, 6, 3, 3)
        # Straight-through: the forward value is exactly k-hot over the in-channel axis.
        assert set(mask.detach().unique().tolist()) <= {0.0, 1.0}
        assert (mask.detach().sum(dim=1) == topk).all()
        nonzero_channels = (layer.effective_weight().detach() != 0).sum(dim=1)
        assert (nonzero_channels <= topk).all()
        magnitudes_nonzero = (layer.magnitudes.detach() != 0).expand(5, 1, 3, 3).squeeze(1)
        assert (nonzero_channels[magnitudes_nonzero] == topk).all()


def test_gumbel_forward_is_conv2d_with_effective_weight():
    layer = GumbelConv2d(4, 3, 3, stride=2, padding=1, topk=2).train()
    x = torch.randn(2, 4, 9, 9)
    torch.manual_seed(1)
    out = layer(x)
    torch.manual_seed(1)
    expected = F.conv2d(x, layer.effective_weight(), layer.bias, stride=2, padding=1)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("topk,hard", [(1, True), (3, True), (1, False), (3, False)])
def test_gumbel_gradients_reach_logits_and_magnitudes(topk, hard):
    torch.manual_seed(0)
    layer = GumbelConv2d(5, 4, 3, padding=1, hard=hard, topk=topk).train()
    layer(torch.randn(3, 5, 8, 8)).square().mean().backward()
    for param in (layer.channel_logits, layer.magnitudes, layer.bias):
        assert param.grad is not None and torch.isfinite(param.grad).all()
        assert param.grad.abs().sum() > 0


def test_gumbel_soft_relaxed_khot_sums_to_k():
    torch.manual_seed(0)
    sample = gumbel_topk(torch.randn(7, 10), tau=0.5, topk=3, hard=False, dim=-1)
    torch.testing.assert_close(sample.sum(dim=-1), torch.full((7,), 3.0))
    assert (sample >= 0).all()
    # Cold relaxation approaches the hard k-hot of the same perturbed logits.
    torch.manual_seed(0)
    cold = gumbel_topk(torch.randn(7, 10), tau=1e-3, topk=3, hard=False, dim=-1)
    torch.manual_seed(0)
    hard = gumbel_topk(torch.randn(7, 10), tau=1e-3, topk=3, hard=True, dim=-1)
    torch.testing.assert_close(cold, hard, atol=1e-3, rtol=0)


@pytest.mark.parametrize("topk", [1, 3])
def test_gumbel_eval_is_deterministic_argmax(topk):
    layer = GumbelConv2d(6, 4, 3, hard=False, topk=topk).eval()
    x = torch.randn(2, 6, 7, 7)
    torch.testing.assert_close(layer(x), layer(x))
    mask = layer.selection()
    expected = torch.zeros_like(mask).scatter_(1, layer.channel_logits.topk(topk, dim=1).indices, 1.0)
    torch.testing.assert_close(mask, expected)
    assert (layer.selected_channels() == layer.channel_logits.topk(topk, dim=1).indices).all()


def test_annealed_tau_endpoints_and_monotone():
    taus = [annealed_tau(epoch, 10, start=2.0, end=0.1) for epoch in range(10)]
    assert taus[0] == pytest.approx(2.0)
    assert taus[-1] == pytest.approx(0.1)
    assert all(a > b for a, b in zip(taus, taus[1:], strict=False))
    assert annealed_tau(0, 1, 2.0, 0.1) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="tau"):
        annealed_tau(0, 10, 0.0, 0.1)


def test_set_tau_is_used_and_validated():
    layer = GumbelConv2d(3, 2, 1)
    layer.set_tau(annealed_tau(4, 5, 1.0, 0.05))
    assert layer.tau == pytest.approx(0.05)
    with pytest.raises(ValueError, match="tau"):
        layer.set_tau(0.0)


def test_gumbel_has_more_parameters_than_conv2d():
    layer = GumbelConv2d(120, 60, 3)
    counts = layer.parameter_count_vs_conv2d()
    conv = nn.Conv2d(120, 60, 3)
    assert counts["conv2d"] == sum(p.numel() for p in conv.parameters()) == conv2d_parameter_count(120, 60, 3)
    assert counts["gumbel_conv2d"] == sum(p.numel() for p in layer.parameters())
    assert counts["gumbel_conv2d"] - counts["conv2d"] == 60 * 3 * 3
    assert GumbelConv2d(4, 2, 3, bias=False).parameter_count_vs_conv2d()["conv2d"] == 4 * 2 * 9


@pytest.mark.parametrize("kwargs", [dict(kernel_size=3), dict(kernel_size=3, stride=2, padding=1),
                                    dict(kernel_size=(2, 4), padding=(1, 0))])
def test_output_shapes_match_conv2d(kwargs):
    x = torch.randn(2, 6, 11, 10)
    expected = nn.Conv2d(6, 4, **kwargs)(x).shape
    assert GumbelConv2d(6, 4, **kwargs)(x).shape == expected
    assert PositiveConv2d(6, 4, **kwargs)(x).shape == expected
    assert PositiveConv2d(6, 4, mode="softplus", **kwargs)(x).shape == expected


def test_gumbel_rejects_bad_arguments():
    with pytest.raises(ValueError, match="topk"):
        GumbelConv2d(3, 2, 3, topk=4)
    with pytest.raises(ValueError, match="logit_scale"):
        GumbelConv2d(3, 2, 3, logit_scale=0)


def _toy_steps(model: nn.Module, steps: int, lr: float = 0.05) -> list[float]:
    """A few Adam steps on random data, calling ``regularize`` after each step like the training loop."""
    torch.manual_seed(0)
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 2, (16,))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        regularize(model)
        losses.append(loss.item())
    return losses


def _tiny_model(conv: nn.Module) -> nn.Sequential:
    return nn.Sequential(conv, nn.AdaptiveMaxPool2d(1), nn.Flatten(1), nn.Linear(6, 2))


def test_positive_projection_weights_stay_nonnegative_after_adam_and_regularize():
    torch.manual_seed(0)
    conv = PositiveConv2d(3, 6, 3, mode="projection")
    assert (conv.weight >= 0).all()
    assert isinstance(conv.weight, nn.Parameter)
    model = _tiny_model(conv)
    _toy_steps(model, steps=10, lr=0.5)  # a large rate so Adam certainly pushes some weights below 0
    assert (conv.weight >= 0).all()
    assert (conv.weight == 0).any()  # the projection made some exactly zero (sparsity)


def test_positive_softplus_effective_weight_always_positive():
    torch.manual_seed(0)
    conv = PositiveConv2d(3, 6, 3, mode="softplus")
    assert (conv.weight > 0).all()
    assert "weight" not in dict(conv.named_parameters()) and "raw_weight" in dict(conv.named_parameters())
    model = _tiny_model(conv)
    _toy_steps(model, steps=10, lr=0.5)
    assert (conv.raw_weight < 0).any()
    assert (conv.weight > 0).all()
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(conv(x), F.conv2d(x, F.softplus(conv.raw_weight), conv.bias))


@pytest.mark.parametrize("mode", ["projection", "softplus"])
def test_positive_init_weights_nonnegative_with_conv2d_scale(mode):
    torch.manual_seed(0)
    conv = PositiveConv2d(16, 32, 3, mode=mode)
    bound = 1 / (16 * 9) ** 0.5
    weight = conv.weight.detach()
    assert (weight >= 0).all() and (weight <= bound + 1e-6).all()
    assert weight.mean().item() == pytest.approx(bound / 2, rel=0.1)
    with pytest.raises(ValueError, match="mode"):
        PositiveConv2d(3, 2, 3, mode="relu")


@pytest.mark.parametrize("make_conv", [
    lambda: GumbelConv2d(3, 6, 3, padding=1, hard=True),
    lambda: GumbelConv2d(3, 6, 3, padding=1, hard=True, topk=2),
    lambda: GumbelConv2d(3, 6, 3, padding=1, hard=False, topk=2),
    lambda: PositiveConv2d(3, 6, 3, padding=1),
    lambda: PositiveConv2d(3, 6, 3, padding=1, mode="softplus"),
])
def test_layers_train_one_step_without_nan(make_conv):
    torch.manual_seed(0)
    model = _tiny_model(make_conv())
    losses = _toy_steps(model, steps=2, lr=1e-2)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_low_tau_makes_training_samples_agree_with_the_eval_choice():
    # The sampled channel must approach the deterministic eval choice as tau is annealed;
    # with argmax(logits + g) it would stay as random as softmax(logits) at any tau.
    torch.manual_seed(0)
    layer = GumbelConv2d(8, 4, 3)
    with torch.no_grad():
        layer.channel_logits.normal_(std=1.0)
    eval_choice = layer.eval().selection()
    layer.train()

    def agreement(tau: float) -> float:
        layer.set_tau(tau)
        return float(torch.stack([(layer.selection() * eval_choice).sum(dim=1).mean()
                                  for _ in range(50)]).mean())

    assert agreement(1.0) < 0.8
    assert agreement(0.02) > 0.99
