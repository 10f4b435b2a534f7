import pytest
import torch
from PIL import Image
from torch import nn

from whitebox.explain.noise import (
    gaussian_noise,
    slot_similarity,
    unit_activations,
    unit_gradients_on_noise,
)
from whitebox.figures.curves import save_slot_update_curves
from whitebox.figures.slots import save_noise_gradient_figure, save_slot_figure
from whitebox.models import build_classifier


def _tiny_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3), nn.GELU(), nn.Conv2d(4, 3, 3), nn.Flatten(1),
                         nn.Linear(3 * 4 * 4, 2)).double()


def _central_difference(f, images: torch.Tensor, direction: torch.Tensor, eps: float = 1e-6):
    return (f(images + eps * direction) - f(images - eps * direction)) / (2 * eps)


def test_noise_is_seeded_and_clamped():
    a = gaussian_noise(5, (3, 6, 6), seed=3)
    assert a.shape == (5, 3, 6, 6) and a.dtype == torch.float32
    assert torch.equal(a, gaussian_noise(5, (3, 6, 6), seed=3))
    assert not torch.equal(a, gaussian_noise(5, (3, 6, 6), seed=4))
    assert a.min() >= 0 and a.max() <= 1


def test_noise_gradients_shape_and_determinism_on_a_registry_model():
    model = build_classifier("directional", 2, [0.5] * 3, [0.25] * 3).train()
    grads = unit_gradients_on_noise(model, "net.conv2", [0, 7, 59], 3, (3, 32, 32), seed=1)
    assert grads.shape == (3, 3, 3, 32, 32)
    assert grads.abs().sum() > 0
    again = unit_gradients_on_noise(model, "net.conv2", [0, 7, 59], 3, (3, 32, 32), seed=1)
    assert torch.equal(grads, again)
    assert model.training  # mode restored


@pytest.mark.parametrize(("layer", "unit"), [("2", 1), ("4", 0)])  # conv (max-pooled) and linear
def test_noise_gradients_equal_finite_differences(layer, unit):
    model = _tiny_model().eval()
    grads = unit_gradients_on_noise(model, layer, [unit], 2, (2, 8, 8), seed=5)
    assert grads.dtype == torch.float64
    images = gaussian_noise(2, (2, 8, 8), seed=5).double()
    direction = torch.randn(images.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def unit_value(x):  # computed independently of the hook: max-pooled channel or feature
        output = model[: int(layer) + 1](x)
        return (output.amax(dim=(2, 3)) if output.dim() == 4 else output)[:, unit].sum()

    torch.testing.assert_close(unit_activations(model, layer, images, [unit]).sum(), unit_value(images))

    numeric = _central_difference(unit_value, images, direction)
    torch.testing.assert_close((grads[0] * direction).sum(), numeric, rtol=1e-5, atol=1e-8)


def _inh_model() -> nn.Sequential:
    model = build_classifier("inh", 3, [0.5], [0.25], image_size=6).double()
    torch.manual_seed(0)
    model.net.inh.add_slots(torch.randn(9, 36, dtype=torch.float64), torch.arange(9) % 3)
    return model.eval()


def test_inh_slot_similarity_and_its_gradient():
    model = _inh_model()
    images = torch.rand(4, 1, 6, 6, dtype=torch.float64)
    similarity = slot_similarity(model, images, [2, 5])
    unit = nn.functional.normalize(((images - 0.5) / 0.25).flatten(1), dim=1)
    torch.testing.assert_close(similarity, unit @ model.net.inh.weight[[2, 5]].t())
    assert similarity.abs().max() <= 1 + 1e-9

    grads = unit_gradients_on_noise(model, "net.inh", [2, 5], 4, (1, 6, 6), seed=2)
    assert grads.shape == (2, 4, 1, 6, 6)
    noise = gaussian_noise(4, (1, 6, 6), seed=2).double()
    direction = torch.randn(noise.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for column, slot in enumerate([2, 5]):
        def similarity_sum(x, s=slot):
            return slot_similarity(model, x, [s]).sum()

        numeric = _central_difference(similarity_sum, noise, direction)
        torch.testing.assert_close((grads[column] * direction).sum(), numeric, rtol=1e-5, atol=1e-8)


def test_unknown_unit_is_a_clear_error():
    with pytest.raises(IndexError, match="out of range"):
        unit_gradients_on_noise(_tiny_model(), "2", [3], 1, (2, 8, 8))


def _assert_only_png(folder, names):
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)
    for name in names:
        with Image.open(folder / name) as png:
            assert png.format == "PNG" and 100 < png.width < 4000 and 50 < png.height < 4000


def test_figures_write_pngs_and_leave_no_temp_files(tmp_path):
    labels = torch.tensor([0, 0, 2, 2, 2, 0, 2])  # class 1 has no slots
    save_slot_figure(torch.randn(7, 3 * 5 * 5), labels, ["a", "b", "c"], (3, 5, 5), tmp_path / "slots.png",
                     max_per_class=2)
    save_noise_gradient_figure(torch.randn(3, 4, 1, 8, 8), ["u0", "u1", "u2"], tmp_path / "noise.png",
                               title="units")
    curve = {"new_slots": [0, 1, 2, 3], "accuracy_update": [90.0, 93.0, 95.0, 96.0],
             "accuracy_heldout": [90.5, 91.0, 91.5, 91.6]}
    save_slot_update_curves({"revealed": curve}, tmp_path / "curve.png", anchor=("anchor", 97.8))
    evaluation_spelling = {"new_slots": [0, 5], "accuracy_update": [90.0, 91.0],
                           "accuracy_held_out": [89.0, 89.5]}
    save_slot_update_curves({"revealed": curve, "revealed+predicted": evaluation_spelling},
                            tmp_path / "curve2.png", anchor=97.8)
    _assert_only_png(tmp_path, ["slots.png", "noise.png", "curve.png", "curve2.png"])


def test_figure_inputs_are_checked(tmp_path):
    with pytest.raises(ValueError, match="reshape"):
        save_slot_figure(torch.randn(2, 10), torch.tensor([0, 1]), ["a", "b"], (1, 5, 5), tmp_path / "s.png")
    with pytest.raises(ValueError, match="lacks"):
        save_slot_update_curves({"revealed": {"new_slots": [0]}}, tmp_path / "c.png")
    with pytest.raises(ValueError, match="no slot-update curve"):
        save_slot_update_curves({}, tmp_path / "c.png")
    assert list(tmp_path.iterdir()) == []
