import torch
from PIL import Image
from torch import nn

from whitebox.explain.gradients import class_gradients, to_display
from whitebox.figures.grids import image_grid, save_filter_grid, save_gradient_figure
from whitebox.models import build_classifier


def test_class_gradients_match_finite_differences():
    torch.manual_seed(0)
    model = build_classifier("directional", 2, [0.5] * 3, [0.25] * 3).double().eval()
    images = torch.rand(3, 3, 32, 32, dtype=torch.float64)
    grads = class_gradients(model, images)
    assert grads.shape == (2, 3, 3, 32, 32)
    direction = torch.randn_like(images[:1])
    eps = 1e-6
    plus = model(images[:1] + eps * direction)[0, 1]
    minus = model(images[:1] - eps * direction)[0, 1]
    numeric = (plus - minus) / (2 * eps)
    torch.testing.assert_close((grads[1, :1] * direction).sum(), numeric, rtol=1e-4, atol=1e-6)


def test_gradients_are_exact_for_a_bias_free_relu_network():
    # u(x) = <grad u(x), x> for positively homogeneous networks (DESIGN.md's property test).
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.ReLU(), nn.AdaptiveMaxPool2d(1),
                          nn.Flatten(), nn.Linear(8, 2, bias=False))
    images = torch.rand(4, 3, 16, 16)
    grads = class_gradients(model, images)
    logits = model(images)
    for c in range(2):
        torch.testing.assert_close((grads[c] * images).flatten(1).sum(1), logits[:, c])


def test_to_display_rescales_each_image_to_unit_range():
    grads = torch.randn(2, 5, 3, 8, 8) * 7
    shown = to_display(grads)
    flat = shown.flatten(2)
    torch.testing.assert_close(flat.min(-1).values, torch.zeros(2, 5))
    torch.testing.assert_close(flat.max(-1).values, torch.ones(2, 5))
    assert torch.equal(to_display(torch.zeros(1, 3, 2, 2)), torch.full((1, 3, 2, 2), 0.5))


def test_image_grid_layout_with_groups():
    images = torch.zeros(10, 1, 4, 4)
    canvas = image_grid(images, ncols=10, pad=1, group_size=5, group_pad=3)
    assert canvas.shape == (6, 10 * 5 + 1 + 3, 3)


def test_figures_are_written_as_png(tmp_path):
    images = torch.rand(12, 3, 8, 8)
    save_gradient_figure(images, torch.rand(2, 12, 3, 8, 8), ["a", "b"], tmp_path / "g.png")
    save_filter_grid(torch.randn(20, 3, 5, 5), tmp_path / "f.png", group_size=5, title="t")
    for name in ("g.png", "f.png"):
        with Image.open(tmp_path / name) as png:
            assert png.format == "PNG" and png.width > 50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "g.png"]
