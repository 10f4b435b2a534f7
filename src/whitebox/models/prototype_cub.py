"""The CUB-200 stage of the log (01.07-22.07.2024): fine-tuned CNNs and prototype networks.

* ``finetuned_cnn``: a pretrained backbone (ResNet34 or BagNet) with a new linear head, the
  log's baselines (ResNet34 82 %, BagNet 78 %);
* ``prototype_network``: ProtoPNet (Chen et al. 2019, arXiv 1806.10574) with ``parts=1``, and the
  log's "prototypes with flexible parts" with ``parts > 1`` (e.g. 9): backbone -> add-on ->
  PartPrototypes -> last layer, trained in ProtoPNet's phases (warm-up, joint, push, last layer)
  through the training loop's Phased hooks.

The backbone attribute is always ``backbone``, so pretrained weights load into ``net.backbone``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from whitebox.layers import PartPrototypes
from whitebox.layers.base import Phased
from whitebox.models.backbones import make_backbone
from whitebox.models.registry import register_model

LAST_LAYER_LR = 1e-3
LAST_LAYER_BATCH = 256


class FineTunedCNN(Phased):
    """Backbone -> global average pool -> linear head; the head learns ``head_lr_scale`` x faster
    (a new layer on pretrained features)."""

    def __init__(self, n_classes: int, in_channels: int = 3, backbone: str = "resnet34",
                 head_lr_scale: float = 10.0) -> None:
        super().__init__()
        self.backbone = make_backbone(backbone, in_channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(self.backbone.out_channels, n_classes)
        self.head_lr_scale = head_lr_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.backbone(x)).flatten(1))

    def parameter_groups(self) -> list[dict]:
        return [{"params": list(self.backbone.parameters()), "lr_scale": 1.0},
                {"params": list(self.head.parameters()), "lr_scale": self.head_lr_scale}]


@register_model("finetuned_cnn")
def finetuned_cnn(n_classes: int, in_channels: int = 3, backbone: str = "resnet34",
                  head_lr_scale: float = 10.0) -> FineTunedCNN:
    """The log's fine-tuned baseline: ``backbone`` (see BACKBONES) with a new linear head."""
    return FineTunedCNN(n_classes, in_channels, backbone, head_lr_scale)


class PrototypeNetwork(Phased):
    """Backbone -> add-on (1x1 conv, ReLU, 1x1 conv, sigmoid) -> PartPrototypes -> last layer.

    Phases, all decided by the epoch number (so a resumed run repeats them exactly):
    epochs ``< warmup_epochs`` train only add-on and prototypes (backbone and last layer frozen);
    later epochs train backbone, add-on and prototypes jointly (last layer frozen). After each
    1-based epoch listed in ``push_epochs`` two passes over the training split follow: pass 0
    pushes every part onto its nearest training latent vector of its class, pass 1 collects the
    prototype scores and refits the last layer alone on them (``last_layer_epochs`` of Adam on
    CE + ``l1`` * L1 of the wrong-class weights). Training batches add ProtoPNet's
    ``cluster`` * cluster cost - ``separation`` * separation cost + ``l1`` * L1.
    """

    def __init__(self, n_classes: int, in_channels: int = 3, backbone: str = "resnet34",
                 per_class: int = 10, parts: int = 1, dim: int = 128, integrate: str = "sum",
                 temperature: float = 1.0, warmup_epochs: int = 5,
                 push_epochs: Sequence[int] = (10, 20), last_layer_epochs: int = 20,
                 cluster: float = 0.8, separation: float = 0.08, l1: float = 1e-4,
                 head_lr_scale: float = 30.0) -> None:
        super().__init__()
        if per_class < 1:
            raise ValueError(f"per_class must be >= 1, got {per_class}")
        if any(int(e) < 1 for e in push_epochs):
            raise ValueError(f"push_epochs are 1-based epoch numbers, got {list(push_epochs)}")
        self.backbone = make_backbone(backbone, in_channels)
        self.add_on = nn.Sequential(
            nn.Conv2d(self.backbone.out_channels, dim, 1), nn.ReLU(),
            nn.Conv2d(dim, dim, 1), nn.Sigmoid(),
        )
        prototype_class = [c for c in range(n_classes) for _ in range(per_class)]
        self.prototypes = PartPrototypes(len(prototype_class), parts, dim, prototype_class,
                                         integrate=integrate, temperature=temperature)
        self.last_layer = nn.Linear(len(prototype_class), n_classes, bias=False)
        # class_identity[c, p] = 1 if prototype p belongs to class c
        self.register_buffer("class_identity",
                             F.one_hot(self.prototypes.prototype_class, n_classes).T.float(),
                             persistent=False)
        self.init_last_layer()
        self.warmup_epochs = warmup_epochs
        self.push_epochs = tuple(int(e) for e in push_epochs)
        self.last_layer_epochs = last_layer_epochs
        self.cluster, self.separation, self.l1 = cluster, separation, l1
        self.head_lr_scale = head_lr_scale
        self._pass: int | None = None  # the data pass in progress
        self._targets: torch.Tensor | None = None
        self._seen = 0  # training images forwarded in this pass (the push's running index)
        self._scores: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    def init_last_layer(self) -> None:
        """ProtoPNet's start: +1 from a prototype to its class, -0.5 to every other class."""
        with torch.no_grad():
            self.last_layer.weight.copy_(1.5 * self.class_identity - 0.5)

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """The latent map the prototypes live in: ``add_on(backbone(x))``."""
        return self.add_on(self.backbone(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.latent(x)
        if self._pass == 0 and self._targets is not None:
            self.prototypes.observe(z, self._targets, self._seen)
        scores = self.prototypes(z)
        if self._pass == 1 and self._targets is not None:
            self._scores.append(scores.detach().float())
            self._labels.append(self._targets.detach())
        if self._targets is not None:
            self._seen += z.shape[0]
        return self.last_layer(scores)

    # -- Phased hooks (see whitebox.layers.base.Phased)

    def parameter_groups(self) -> list[dict]:
        return [
            {"params": list(self.backbone.parameters()), "lr_scale": 1.0},
            {"params": [*self.add_on.parameters(), *self.prototypes.parameters()],
             "lr_scale": self.head_lr_scale},
            {"params": list(self.last_layer.parameters()), "lr_scale": 1.0},
        ]

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Warm-up (epoch < warmup_epochs): add-on and prototypes only; then joint training of
        backbone, add-on and prototypes. The last layer is trained only by the refit pass."""
        self.backbone.requires_grad_(epoch >= self.warmup_epochs)
        self.add_on.requires_grad_(True)
        self.prototypes.requires_grad_(True)
        self.last_layer.requires_grad_(False)

    def auxiliary_loss(self, labels: torch.Tensor) -> torch.Tensor:
        """ProtoPNet's ``cluster * cluster_cost - separation * separation_cost + l1 * L1``."""
        if self.prototypes.min_distances is None:
            raise RuntimeError("auxiliary_loss() needs a forward pass first")
        terms = self.loss_terms(labels)
        return (self.cluster * terms["cluster"] - self.separation * terms["separation"]
                + self.l1 * terms["l1"])

    def loss_terms(self, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """The unweighted terms of the last forward pass.

        A prototype's distance is the mean of its parts' minimum distances; ``cluster`` is the
        batch mean of the distance to the nearest own-class prototype (pulls each image near a
        prototype of its class), ``separation`` that to the nearest other-class prototype (pushed
        away), ``l1`` the L1 norm of the last layer's wrong-class weights (sparsity).
        """
        distances = self.prototypes.min_distances.mean(dim=-1)  # (N, n_prototypes)
        own = self.prototypes.prototype_class[None, :] == labels[:, None]
        return {
            "cluster": distances.masked_fill(~own, float("inf")).amin(dim=1).mean(),
            "separation": distances.masked_fill(own, float("inf")).amin(dim=1).mean(),
            "l1": self.wrong_class_l1(),
        }

    def wrong_class_l1(self) -> torch.Tensor:
        """L1 norm of the last layer's weights from prototypes to classes they do not belong to."""
        return (self.last_layer.weight.float() * (1 - self.class_identity)).abs().sum()

    def data_passes(self, epoch: int, epochs: int) -> int:
        """2 (push, then last-layer refit) after each 1-based epoch in push_epochs that is
        <= epochs; 0 otherwise."""
        number = epoch + 1
        return 2 if number in self.push_epochs and number <= epochs else 0

    def begin_pass(self, index: int) -> None:
        self._pass, self._seen = index, 0
        if index == 0:
            self.prototypes.begin_push()
        else:
            self._scores, self._labels = [], []

    def set_targets(self, labels: torch.Tensor | None) -> None:
        self._targets = labels

    def end_pass(self, index: int) -> None:
        self._pass, self._targets = None, None
        if index == 0:
            self.prototypes.end_push()
        elif index == 1:
            scores, labels = torch.cat(self._scores), torch.cat(self._labels)
            self._scores, self._labels = [], []
            self.fit_last_layer(scores, labels)

    def fit_last_layer(self, scores: torch.Tensor, labels: torch.Tensor) -> None:
        """Refit the last layer alone on fixed prototype scores ``(M, n_prototypes)``.

        ``last_layer_epochs`` epochs of Adam (lr 1e-3) on CE + l1 * wrong-class L1, mini-batches
        of 256 in an order drawn from a generator seeded with 0 (deterministic, no global RNG).
        Runs with autograd on and autocast off, whatever the caller's context.
        """
        weight = self.last_layer.weight
        was_trainable = weight.requires_grad
        generator = torch.Generator().manual_seed(0)
        scores, labels = scores.to(weight.device).float(), labels.to(weight.device)
        try:
            weight.requires_grad_(True)
            optimizer = torch.optim.Adam([weight], lr=LAST_LAYER_LR)
            with torch.enable_grad(), torch.autocast(weight.device.type, enabled=False):
                for _ in range(self.last_layer_epochs):
                    order = torch.randperm(scores.shape[0], generator=generator).to(weight.device)
                    for first in range(0, scores.shape[0], LAST_LAYER_BATCH):
                        batch = order[first:first + LAST_LAYER_BATCH]
                        loss = (F.cross_entropy(scores[batch] @ weight.float().T, labels[batch])
                                + self.l1 * self.wrong_class_l1())
                        optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        optimizer.step()
        finally:
            weight.grad = None
            weight.requires_grad_(was_trainable)


@register_model("prototype_network")
def prototype_network(n_classes: int, in_channels: int = 3, backbone: str = "resnet34",
                      per_class: int = 10, parts: int = 1, dim: int = 128, integrate: str = "sum",
                      temperature: float = 1.0, warmup_epochs: int = 5,
                      push_epochs: Sequence[int] = (10, 20), last_layer_epochs: int = 20,
                      cluster: float = 0.8, separation: float = 0.08, l1: float = 1e-4,
                      head_lr_scale: float = 30.0) -> PrototypeNetwork:
    """ProtoPNet (``parts=1``, 10 prototypes per class, 128-d latent) or the log's prototypes with
    flexible parts (``parts=9``, e.g. ``per_class=5``); ``integrate`` is "sum" (non-negative
    weighted sum of part similarities) or "softmaxpool" (their soft maximum at ``temperature``)."""
    return PrototypeNetwork(n_classes, in_channels, backbone, per_class, parts, dim, integrate,
                            temperature, warmup_epochs, push_epochs, last_layer_epochs, cluster,
                            separation, l1, head_lr_scale)
