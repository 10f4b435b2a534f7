import pytest
import torch

from whitebox.layers import IncrementalNeuralHashing
from whitebox.layers.hashing import pool_by_class, precision_thresholds
from whitebox.models import build_classifier
from whitebox.training import TrainSettings, fit


def clustered(n_per_class: int, n_classes: int = 3, dim: int = 16, seed: int = 0):
    """Points around a few random directions per class (so a few slots suffice)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, 2, dim, generator=g)
    labels = torch.arange(n_classes).repeat_interleave(n_per_class)
    which = torch.randint(0, 2, (labels.numel(),), generator=g)
    x = centres[labels, which] + 0.3 * torch.randn(labels.numel(), dim, generator=g)
    order = torch.randperm(labels.numel(), generator=g)
    return x[order], labels[order]


def train_forward(layer: IncrementalNeuralHashing, x, labels):
    layer.train()
    layer.set_targets(labels)
    out = layer(x)
    layer.set_targets(None)
    return out


def test_thresholds_give_full_precision_on_their_batch():
    x, labels = clustered(40)
    slots = torch.nn.functional.normalize(x[:7] + 0.1, dim=1)  # near some examples
    slot_labels = labels[:7]
    similarity = torch.nn.functional.normalize(x, dim=1) @ slots.t()
    thresholds = precision_thresholds(similarity, slot_labels, labels, floor=-1.0)
    fires = similarity >= thresholds
    assert fires.any()
    assert (labels.view(-1, 1) == slot_labels.view(1, -1))[fires].all()
    # the threshold is the lowest such value: just above the best other-class score
    other = labels.view(-1, 1) != slot_labels.view(1, -1)
    best_other = similarity.masked_fill(~other, -2).max(0).values
    torch.testing.assert_close(thresholds, best_other + 1e-4)


def test_growth_covers_every_example_and_keeps_existing_slots():
    layer = IncrementalNeuralHashing(16, 3)
    x, labels = clustered(30)
    train_forward(layer, x[:45], labels[:45])
    assert layer.n_slots > 0
    before = layer.weight.detach().clone(), layer.slot_labels.clone(), layer.thresholds.clone()
    probe = torch.randn(5, 16)
    scores_before = torch.nn.functional.normalize(probe, dim=1) @ before[0].t()
    train_forward(layer, x[45:], labels[45:])
    n_old = before[0].shape[0]
    assert torch.equal(layer.weight[:n_old].detach(), before[0])
    assert torch.equal(layer.slot_labels[:n_old], before[1])
    scores_after = torch.nn.functional.normalize(probe, dim=1) @ layer.weight[:n_old].detach().t()
    torch.testing.assert_close(scores_after, scores_before)
    # after growth every example of the batch is matched by a slot of its own class
    unit = torch.nn.functional.normalize(x[45:], dim=1)
    similarity = unit @ layer.weight.detach().t()
    thresholds = precision_thresholds(similarity, layer.slot_labels, labels[45:])
    own = labels[45:].view(-1, 1) == layer.slot_labels.view(1, -1)
    assert ((similarity >= thresholds) & own).any(1).all()
    assert layer.n_slots < 45  # a cover, not one slot per example


def test_pool_by_class_max_and_softmax():
    margins = torch.tensor([[0.1, 0.5, -0.2, 0.3]])
    slot_labels = torch.tensor([0, 0, 1, 1])
    torch.testing.assert_close(pool_by_class(margins, slot_labels, 3, None),
                               torch.tensor([[0.5, 0.3, -2.0]]))
    cold = pool_by_class(margins, slot_labels, 3, 1e-4)
    torch.testing.assert_close(cold, torch.tensor([[0.5, 0.3, -2.0]]))
    hot = pool_by_class(margins, slot_labels, 3, 1e6)
    torch.testing.assert_close(hot, torch.tensor([[0.3, 0.05, -2.0]]), atol=1e-4, rtol=0)


def test_pruning_removes_silent_slots_and_training_continues():
    layer = IncrementalNeuralHashing(16, 3)
    x, labels = clustered(30)
    train_forward(layer, x, labels)
    n = layer.n_slots
    layer.activations[0] = 0
    layer.activations[1:] = 1
    assert layer.end_epoch() == 1 and layer.n_slots == n - 1
    assert layer.thresholds.shape == layer.slot_labels.shape == layer.activations.shape == (n - 1,)
    assert int(layer.activations.sum()) == 0
    out = train_forward(layer, x, labels)
    torch.nn.functional.cross_entropy(out, labels).backward()
    layer.sgd_step()
    torch.testing.assert_close(layer.weight.detach().norm(dim=1), torch.ones(layer.n_slots))


def test_grown_layer_reloads_from_a_state_dict():
    layer = IncrementalNeuralHashing(16, 3)
    x, labels = clustered(30)
    train_forward(layer, x, labels)
    fresh = IncrementalNeuralHashing(16, 3)
    fresh.load_state_dict(layer.state_dict())
    for name in ("weight", "slot_labels", "thresholds", "activations"):
        assert torch.equal(getattr(fresh, name), getattr(layer, name)), name
    layer.eval(), fresh.eval()
    torch.testing.assert_close(fresh(x), layer(x))


def test_eval_is_deterministic_and_matches_training_data():
    layer = IncrementalNeuralHashing(16, 3)
    x, labels = clustered(30)
    train_forward(layer, x, labels)
    layer.eval()
    assert torch.equal(layer(x), layer(x))
    assert (layer.best_margin(x) >= 0).float().mean() > 0.5


def test_bad_shapes_give_clear_errors():
    layer = IncrementalNeuralHashing(16, 3)
    with pytest.raises(ValueError, match=r"expects \(batch, 16\)"):
        layer(torch.randn(4, 15))
    layer.train()
    layer.set_targets(torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="labels must be int64"):
        layer(torch.randn(4, 16))
    with pytest.raises(ValueError, match="pooling"):
        IncrementalNeuralHashing(16, 3, pooling="mean")


@pytest.mark.parametrize("backbone", ["identity", "directional"])
def test_inh_model_trains_with_the_shared_loop(backbone):
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (256,), generator=g)
    images = torch.randint(0, 60, (256, 3, 32, 32), generator=g, dtype=torch.uint8)
    images[labels == 1, :, :16] += 150
    images[labels == 0, :, 16:] += 150
    torch.manual_seed(0)
    model = build_classifier("inh", 2, [0.3] * 3, [0.3] * 3, image_size=32, backbone=backbone)
    settings = TrainSettings(epochs=2, batch_size=64, optimizer={"name": "adam", "lr": 1e-3})
    records, _ = fit(model, images, labels, images, labels, settings, seed=0)
    assert records[-1].slots == model.net.inh.n_slots > 0
    assert records[-1].test_accuracy > 90


def test_growth_from_batch_candidates_covers_with_no_more_slots():
    x, labels = clustered(30)
    own = IncrementalNeuralHashing(16, 3, candidates="unmatched")
    batch = IncrementalNeuralHashing(16, 3, candidates="batch")
    train_forward(own, x, labels)
    train_forward(batch, x, labels)
    assert 0 < batch.n_slots <= own.n_slots
    with pytest.raises(ValueError, match="candidates"):
        IncrementalNeuralHashing(16, 3, candidates="all")


def test_naive_selection_makes_every_unmatched_example_a_slot():
    """Two close unit vectors per class, the classes orthogonal: one slot covers each class."""
    angles = torch.tensor([0.0, 10.0, 90.0, 100.0]).deg2rad()
    x, labels = torch.stack([angles.cos(), angles.sin()], dim=1), torch.tensor([0, 0, 1, 1])
    greedy = IncrementalNeuralHashing(2, 2)
    naive = IncrementalNeuralHashing(2, 2, selection="naive")
    train_forward(greedy, x, labels)
    train_forward(naive, x, labels)
    assert greedy.slot_labels.tolist() == [0, 1]
    assert naive.slot_labels.tolist() == [0, 0, 1, 1]
    torch.testing.assert_close(naive.weight.detach(), x)
    with pytest.raises(ValueError, match="leave candidates at 'unmatched'"):
        IncrementalNeuralHashing(2, 2, selection="naive", candidates="batch")
    with pytest.raises(ValueError, match="selection"):
        IncrementalNeuralHashing(2, 2, selection="random")
