import pytest
import torch

from whitebox.layers import Mean, Normalize, Scale, SoftMaxPool


def test_softmaxpool_shape_and_gradient():
    x = torch.randn(4, 12, requires_grad=True)
    out = SoftMaxPool(3)(x)
    assert out.shape == (4, 3)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert (x.grad.abs() > 0).all()


def test_softmaxpool_formula_per_block():
    x = torch.tensor([[1.0, 2.0, 3.0, -1.0]])
    out = SoftMaxPool(2, temperature=1.0)(x)
    first = torch.softmax(torch.tensor([1.0, 2.0]), 0) @ torch.tensor([1.0, 2.0])
    second = torch.softmax(torch.tensor([3.0, -1.0]), 0) @ torch.tensor([3.0, -1.0])
    torch.testing.assert_close(out, torch.stack([first, second]).view(1, 2))


def test_softmaxpool_tends_to_max_and_mean():
    x = torch.randn(5, 20, dtype=torch.float64)
    blocks = x.view(5, 4, 5)
    cold = SoftMaxPool(4, temperature=1e-4)(x)
    hot = SoftMaxPool(4, temperature=1e6)(x)
    torch.testing.assert_close(cold, blocks.max(-1).values)
    torch.testing.assert_close(hot, blocks.mean(-1), atol=1e-5, rtol=0)


def test_softmaxpool_rejects_uneven_groups_and_bad_temperature():
    with pytest.raises(ValueError, match="equal groups"):
        SoftMaxPool(3)(torch.randn(2, 10))
    with pytest.raises(ValueError, match="temperature"):
        SoftMaxPool(2, temperature=0)


def test_mean_exact_values():
    x = torch.arange(12.0).view(1, 12)
    torch.testing.assert_close(Mean(3)(x), torch.tensor([[1.5, 5.5, 9.5]]))


def test_scale_exact_value_and_gradient():
    layer = Scale(init=2.0)
    x = torch.tensor([[1.0, -3.0]])
    out = layer(x)
    torch.testing.assert_close(out, torch.tensor([[2.0, -6.0]]))
    out.sum().backward()
    torch.testing.assert_close(layer.scale.grad, torch.tensor(-2.0))
    assert sum(p.numel() for p in layer.parameters()) == 1


def test_normalize_per_channel():
    layer = Normalize([0.5, 0.0], [0.5, 2.0])
    x = torch.ones(1, 2, 2, 2)
    out = layer(x)
    torch.testing.assert_close(out[0, 0], torch.ones(2, 2))
    torch.testing.assert_close(out[0, 1], torch.full((2, 2), 0.5))
