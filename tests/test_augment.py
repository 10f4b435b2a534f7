"""The "protopnet" augmentation: ProtoPNet's offline set (rotate, skew, shear, then hflip),
drawn afresh per batch on the training device."""

import pytest
import torch

from whitebox.augmentations import AUGMENTATIONS, augment_batch, augmentation, augmentation_names
from whitebox.augmentations.protopnet import ROTATE, SHEAR, SKEW, homography, protopnet_parameters
from whitebox.schema import block


def asymmetric(n: int, h: int = 12, w: int = 16) -> torch.Tensor:
    """n copies of a picture without symmetries: a ramp in x, another in y, a bright patch."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    image = torch.stack([xs / w, ys / h, ((xs < 5) & (ys < 4)).float()])
    return image.expand(n, 3, h, w).clone()


def test_output_keeps_shape_dtype_device_and_is_channels_last():
    images = torch.rand(5, 3, 12, 16).contiguous(memory_format=torch.channels_last)
    out = augment_batch(images, ["protopnet"], torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    assert out.device == images.device
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_same_seed_same_output_other_seed_other_output():
    images = torch.rand(8, 3, 12, 16)
    first = augment_batch(images, ["protopnet"], torch.Generator().manual_seed(1))
    again = augment_batch(images, ["protopnet"], torch.Generator().manual_seed(1))
    other = augment_batch(images, ["protopnet"], torch.Generator().manual_seed(2))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.allclose(first, other)


def test_constant_image_stays_constant():
    # No pipeline leaves empty corners (as Augmentor crops them away), and border padding
    # keeps the rim: a constant image comes out constant everywhere.
    images = torch.full((64, 3, 12, 16), 0.3)
    out = augment_batch(images, ["protopnet"], torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, images)


def test_no_pipeline_samples_outside_the_image():
    h, w = 12, 16
    _, matrices = protopnet_parameters(3000, h, w, torch.Generator().manual_seed(0))
    corners = torch.tensor([[-w / 2, -h / 2, 1], [w / 2, -h / 2, 1], [w / 2, h / 2, 1],
                            [-w / 2, h / 2, 1]], dtype=torch.float64)
    mapped = corners @ matrices.transpose(1, 2)
    mapped = mapped[..., :2] / mapped[..., 2:]
    assert (mapped[..., 0].abs() <= w / 2 + 1e-9).all()
    assert (mapped[..., 1].abs() <= h / 2 + 1e-9).all()


def test_transform_is_not_the_identity():
    images = asymmetric(40)
    out = augment_batch(images, ["protopnet"], torch.Generator().manual_seed(0))
    changed = (out - images).abs().flatten(1).amax(1) > 1e-3
    assert changed.all()


def test_the_three_pipelines_and_the_flip_each_occur():
    kinds, matrices = protopnet_parameters(300, 12, 16, torch.Generator().manual_seed(0))
    counts = kinds.bincount(minlength=3)
    assert counts.sum() == 300 and (counts > 70).all()
    affine = (matrices[:, 2, :2].abs() < 1e-12).all(1)  # rotation and shear are affine
    assert affine[kinds == ROTATE].all() and affine[kinds == SHEAR].all()
    assert not affine[kinds == SKEW].any()
    rotations = matrices[kinds == ROTATE]  # zoomed rotations, possibly mirrored
    assert torch.allclose(rotations[:, 0, 0].abs(), rotations[:, 1, 1].abs())
    shears = matrices[kinds == SHEAR]  # one off-diagonal entry zero, the other the shear
    assert ((shears[:, 0, 1].abs() < 1e-12) | (shears[:, 1, 0].abs() < 1e-12)).all()
    mirrored = torch.linalg.det(matrices) < 0
    assert 100 < mirrored.sum() < 200


def test_homography_maps_the_four_points():
    source = torch.tensor([[[-9.0, -6.0], [8.0, -6.0], [8.0, 9.0], [-8.0, 6.0]]], dtype=torch.float64)
    target = torch.tensor([[[-8.0, -6.0], [8.0, -6.0], [8.0, 6.0], [-8.0, 6.0]]], dtype=torch.float64)
    matrix = homography(source, target)[0]
    mapped = torch.cat([source[0], torch.ones(4, 1, dtype=torch.float64)], 1) @ matrix.T
    torch.testing.assert_close(mapped[:, :2] / mapped[:, 2:], target[0])


def test_unknown_name_raises_one_line():
    assert "protopnet" in augmentation_names()
    with pytest.raises(ValueError, match="valid: hflip, translate, protopnet") as error:
        augment_batch(torch.zeros(2, 3, 4, 4), ["rotate"], torch.Generator())
    assert "\n" not in str(error.value)


def test_the_schema_lists_exactly_the_registered_augmentations():
    # config.yaml's training.augment is checked against the schema's enum; the registry is
    # found statically (whitebox.code_identity.registered_augmentations) and must name exactly
    # what the modules register when imported.
    enum = block("$defs", "training")["properties"]["augment"]["items"]["enum"]
    assert sorted(enum) == sorted(augmentation_names())
    for name in augmentation_names():
        augmentation(name)
    assert sorted(AUGMENTATIONS) == sorted(augmentation_names())
