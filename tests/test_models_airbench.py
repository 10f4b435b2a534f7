"""The airbench-style reference network (Jordan 2024): shapes, size, fixed output scale, flip TTA."""

import pytest
import torch

from whitebox.models import build_classifier, build_model
from whitebox.models.airbench import FlipAveraged


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def test_builds_and_trains_a_step_on_the_cpu_with_one_logit_per_class():
    model = build_classifier("airbench", 10, [0.5] * 3, [0.25] * 3, flip_tta=True).train()
    logits = model(torch.rand(4, 3, 32, 32))
    assert logits.shape == (4, 10)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    # airbench94's size (about 2M weights) with widths 64/256/256
    assert 1.9e6 < sum(p.numel() for p in model.parameters()) < 2.05e6


def test_layers_halve_the_map_down_to_a_global_max_pool():
    model = build_model("airbench", n_classes=10, in_channels=3)
    assert list(dict(model.named_children())) == [
        "whiten", "act0", "block1", "block2", "block3", "pool", "flatten", "head", "scale"]
    assert model.whiten.weight.shape == (24, 3, 2, 2) and model.head.bias is None
    sizes = []
    x = torch.rand(2, 3, 32, 32)
    for layer in model[:5]:
        x = layer(x)
        sizes.append(tuple(x.shape[1:]))
    assert sizes == [(24, 31, 31), (24, 31, 31), (64, 15, 15), (256, 7, 7), (256, 3, 3)]
    assert build_model("airbench", n_classes=2, in_channels=1, widths=(8, 16, 32))(
        torch.rand(2, 1, 28, 28)).shape == (2, 2)


def test_output_scale_is_fixed_not_learnt():
    model = build_model("airbench", n_classes=10, in_channels=3, output_scale=0.5).eval()
    assert not list(model.scale.parameters())
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), 0.5 * model[:-1](x))


def test_flip_tta_averages_eval_logits_over_the_mirror_image_only_in_eval_mode():
    plain = build_model("airbench", n_classes=10, in_channels=3)
    tta = build_model("airbench", n_classes=10, in_channels=3, flip_tta=True)
    assert isinstance(tta, FlipAveraged) and not isinstance(plain, FlipAveraged)
    tta.load_state_dict(plain.state_dict())
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(tta.train()(x), plain.train()(x))
        plain.eval(), tta.eval()
        torch.testing.assert_close(tta(x), 0.5 * (plain(x) + plain(x.flip(-1))))
        torch.testing.assert_close(tta(x.flip(-1)), tta(x))  # mirror-invariant


def test_widths_must_name_three_blocks():
    with pytest.raises(ValueError, match="widths must give 3 positive block widths"):
        build_model("airbench", n_classes=10, in_channels=3, widths=(64, 256))
