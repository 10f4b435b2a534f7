"""AugMax, the warped-kernel convolutions (ScaleConv2d, PerspectiveConv2d) and ProjectiveConv2d."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from kornia.geometry.transform import rotate
from torch import nn

from whitebox.layers import AugMax, PerspectiveConv2d, ProjectiveConv2d, ScaleConv2d, WarpedConv2d
from whitebox.layers.base import regularize
from whitebox.layers.projective import project, view_angles


def small_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(6, 5, 3), nn.Flatten(1))
    with torch.no_grad():  # non-trivial running statistics
        net[1].running_mean.uniform_(-0.2, 0.2)
        net[1].running_var.uniform_(0.5, 1.5)
    return net.eval()


def images(n: int = 4, size: int = 12) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1))


def explicit_views_max(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer's output as V separate convolutions, one per kernel view, then the maximum."""
    outs = [F.conv2d(x, view, layer.bias, stride=layer.stride, padding=layer.padding)
            for view in layer.kernel_views()]
    return torch.stack(outs).amax(dim=0)


# --- AugMax ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("angles", "hflip"), [((0.0, 15.0, -15.0), True), ((0.0,), True),
                                               ((15.0, 0.0), False)])
def test_augmax_equals_the_max_over_separately_transformed_inputs(angles, hflip):
    net = small_net()
    layer = AugMax(net, angles, hflip)
    x = images()
    copies = []
    for flip in [False, True] if hflip else [False]:
        for angle in [0.0] + [a for a in angles if a != 0.0]:
            view = x if angle == 0.0 else rotate(x, torch.full((len(x),), angle))
            copies.append(view.flip(-1) if flip else view)
    with torch.no_grad():
        expected = torch.stack([net(view) for view in copies]).amax(dim=0)
        assert torch.allclose(layer(x), expected, atol=1e-5)
    assert layer.n_copies == len(copies)


def test_augmax_copies_are_named_in_batch_order_identity_first():
    layer = AugMax(nn.Identity(), angles=(15.0, 0.0, -15.0), hflip=True)
    assert layer.n_copies == 6
    assert layer.copy_names() == ["identity", "rot+15", "rot-15", "hflip", "hflip rot+15", "hflip rot-15"]
    assert "n_copies=6" in repr(layer)
    x = images(2)
    batch = layer.augment(x)
    assert batch.shape == (12, 3, 12, 12)
    assert torch.equal(batch[:2], x)
    assert torch.equal(batch[6:8], x.flip(-1))


def test_augmax_identity_only_is_the_module_itself():
    net = small_net()
    x = images()
    with torch.no_grad():
        assert torch.equal(AugMax(net)(x), net(x))


def test_augmax_needs_the_identity_and_distinct_angles():
    with pytest.raises(ValueError, match="contain 0"):
        AugMax(nn.Identity(), angles=(15.0, -15.0))
    with pytest.raises(ValueError, match="distinct"):
        AugMax(nn.Identity(), angles=(0.0, 15.0, 15.0))


def test_augmax_shape_gradient_channels_last_and_autocast():
    net = small_net().train()
    layer = AugMax(net, angles=(0.0, 15.0, -15.0), hflip=True)
    x = images().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    out = layer(x)
    assert out.shape == (4, 5 * 3 * 3)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer.eval()(x).shape == (4, 45)


# --- warped-kernel convolutions --------------------------------------------------------------------

def test_scale_conv_scale_one_view_is_the_kernel_and_other_scales_are_not():
    torch.manual_seed(0)
    layer = ScaleConv2d(3, 4, 5)
    views = layer.kernel_views()
    assert views.shape == (3, 4, 3, 5, 5)
    assert layer.view_labels() == ["scale 0.8", "scale 1", "scale 1.25"]
    assert torch.allclose(views[1], layer.weight, atol=1e-6)
    assert not torch.allclose(views[0], layer.weight, atol=1e-3)
    assert not torch.allclose(views[2], layer.weight, atol=1e-3)


def test_scale_conv_scales_about_the_kernel_centre():
    layer = ScaleConv2d(1, 1, 5, scales=(2.0,))
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[0, 0, 2, 2] = 1.0  # the centre pixel stays where it is
        layer.weight[0, 0, 2, 3] = 1.0  # one pixel right of it moves two pixels right
    view = layer.kernel_views()[0, 0, 0].detach()
    assert view[2, 2] == pytest.approx(1.0) and view[2, 4] == pytest.approx(1.0)
    assert view[2, 3] == pytest.approx(1.0)  # halfway between the two, interpolated


def test_perspective_conv_zero_perspective_is_the_plain_convolution():
    torch.manual_seed(0)
    layer = PerspectiveConv2d(3, 4, 5, n_views=4, padding=2)
    with torch.no_grad():
        layer.perspective.zero_()
    views = layer.kernel_views()
    assert views.shape == (5, 4, 3, 5, 5)
    for view in views:
        assert torch.allclose(view, layer.weight, atol=1e-6)
    x = images()
    expected = F.conv2d(x, layer.weight, layer.bias, padding=2)
    assert torch.allclose(layer(x), expected, atol=1e-5)


def test_perspective_conv_starts_with_visible_warps_in_n_directions():
    torch.manual_seed(0)
    layer = PerspectiveConv2d(3, 4, 5, n_views=4, spread=0.1)
    assert layer.perspective.shape == (4, 4, 2)
    assert torch.allclose(layer.perspective[0, 0], torch.tensor([0.1, 0.0]))
    assert torch.allclose(layer.perspective[3, 1], torch.tensor([0.0, 0.1]), atol=1e-7)
    views = layer.kernel_views()
    assert torch.equal(views[0], layer.weight)  # view 0: the plain kernel
    for view in views[1:]:
        change = (view - layer.weight).norm() / layer.weight.norm()
        assert 0.05 < change < 0.5
    assert layer.view_labels() == ["identity"] + [f"perspective {j}" for j in range(1, 5)]


@pytest.mark.parametrize("make", [lambda: ScaleConv2d(3, 4, 5, padding=1, stride=2),
                                  lambda: PerspectiveConv2d(3, 4, 5, n_views=3, padding=1, stride=2)])
def test_warped_conv_forward_is_the_max_over_per_view_convolutions(make):
    torch.manual_seed(0)
    layer = make()
    assert isinstance(layer, WarpedConv2d)
    x = images()
    with torch.no_grad():
        assert torch.allclose(layer(x), explicit_views_max(layer, x), atol=1e-5)
    assert layer(x).shape == (4, 4, 5, 5)


def test_perspective_conv_gradients_reach_weight_and_perspective():
    torch.manual_seed(0)
    layer = PerspectiveConv2d(3, 4, 5)
    layer(images()).square().sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert layer.perspective.grad is not None and layer.perspective.grad.abs().sum() > 0


@pytest.mark.parametrize("make", [lambda: ScaleConv2d(3, 4, 5, positive=True),
                                  lambda: PerspectiveConv2d(3, 4, 5, positive=True),
                                  lambda: ProjectiveConv2d(3, 4, 5, positive=True)])
def test_positive_variants_start_and_stay_non_negative(make):
    torch.manual_seed(0)
    layer = make()
    assert (layer.weight >= 0).all()
    with torch.no_grad():
        layer.weight.sub_(0.05)
    assert (layer.weight < 0).any()
    regularize(nn.Sequential(layer))
    assert (layer.weight >= 0).all() and (layer.kernel_views() >= 0).all()


def test_signed_variants_are_left_alone_by_regularize():
    torch.manual_seed(0)
    layer = ScaleConv2d(3, 4, 5)
    before = layer.weight.detach().clone()
    assert (before < 0).any()
    layer.regularize_weights()
    assert torch.equal(layer.weight, before)


# --- ProjectiveConv2d ------------------------------------------------------------------------------

def test_projecting_a_kernel_rotated_by_zero_degrees_recovers_the_summed_kernel():
    volume = torch.randn(4, 3, 5, 5, 5, generator=torch.Generator().manual_seed(0))
    projected = project(volume, torch.zeros(1, 2))
    assert projected.shape == (1, 4, 3, 5, 5)
    assert torch.allclose(projected[0], volume.sum(dim=2), atol=1e-5)


def test_projective_conv_has_8_views_that_differ_from_the_frontal_projection():
    torch.manual_seed(0)
    layer = ProjectiveConv2d(3, 4, 5)
    assert layer.volume.shape == (4, 3, 5, 5, 5)
    assert layer.weight.shape == (4, 15, 5, 5)
    views = layer.kernel_views()
    assert views.shape == (8, 4, 3, 5, 5)
    assert len(view_angles(20.0)) == 8 and (0.0, 0.0) not in view_angles(20.0)
    assert layer.view_labels()[0] == "x-20 y-20" and "x+20 y+0" in layer.view_labels()
    frontal = layer.volume.sum(dim=2)
    for view in views:
        assert not torch.allclose(view, frontal, atol=1e-3)


def test_projective_conv_views_by_the_precomputed_operator_equal_the_kornia_warp():
    torch.manual_seed(0)
    layer = ProjectiveConv2d(3, 4, 5, depth=3, angle=25.0)
    assert torch.allclose(layer.kernel_views(), project(layer.volume, layer.angles_xy), atol=1e-5)


def test_projective_conv_rotation_about_x_moves_the_back_of_the_volume_vertically():
    volume = torch.zeros(1, 1, 5, 5, 5)
    volume[0, 0, 4, 2, 2] = 1.0  # back slice, centre pixel
    about_x, about_y = project(volume, torch.tensor([[20.0, 0.0], [0.0, 20.0]]))[:, 0, 0]
    assert about_x[:, 2].sum() == pytest.approx(about_x.sum()) and about_x[2, 2] < 0.5
    assert about_y[2, :].sum() == pytest.approx(about_y.sum()) and about_y[2, 2] < 0.5


def test_projective_conv_forward_is_the_max_over_views_and_gradients_reach_weight():
    torch.manual_seed(0)
    layer = ProjectiveConv2d(3, 4, 3, depth=2, padding=1)
    x = images()
    with torch.no_grad():
        assert torch.allclose(layer(x), explicit_views_max(layer, x), atol=1e-5)
    out = layer(x)
    assert out.shape == (4, 4, 12, 12)
    out.square().sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_projective_conv_init_gives_the_projection_a_conv2d_like_magnitude():
    torch.manual_seed(0)
    signed = ProjectiveConv2d(16, 32, 5).volume.sum(dim=2)
    conv = nn.Conv2d(16, 32, 5).weight
    assert signed.std().item() == pytest.approx(conv.std().item(), rel=0.15)
    positive = ProjectiveConv2d(16, 32, 5, positive=True).volume.sum(dim=2)
    bound = 1 / (16 * 25) ** 0.5
    assert positive.mean().item() == pytest.approx(bound / 2, rel=0.1)  # PositiveConv2d's mean


def test_projective_conv_survives_channels_last_conversion_of_the_model():
    torch.manual_seed(0)
    layer = ProjectiveConv2d(3, 4, 3)
    x = images()
    with torch.no_grad():
        expected = layer(x)
        layer.to(memory_format=torch.channels_last)  # as the training loop does
        assert torch.allclose(layer(x.contiguous(memory_format=torch.channels_last)), expected, atol=1e-5)


# --- all layers ------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda: AugMax(small_net(), (0.0, 15.0, -15.0), hflip=True),
                                  lambda: ScaleConv2d(3, 4, 5, positive=True),
                                  lambda: PerspectiveConv2d(3, 4, 5),
                                  lambda: ProjectiveConv2d(3, 4, 3, depth=3)])
def test_state_dict_round_trip_gives_identical_outputs(make):
    torch.manual_seed(0)
    layer = make().eval()
    if isinstance(layer, PerspectiveConv2d):
        with torch.no_grad():
            layer.perspective.add_(0.05 * torch.randn_like(layer.perspective))  # not the init
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    torch.manual_seed(1)
    fresh = make().eval()
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer))
    x = images()
    with torch.no_grad():
        assert torch.equal(fresh(x), layer(x))
