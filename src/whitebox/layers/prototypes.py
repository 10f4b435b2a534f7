"""Prototypes with flexible parts (log, 01.07-22.07.2024); ProtoPNet is the one-part case.

A prototype is ``parts`` vectors in the latent space of an encoder. Each part is looked for
everywhere in the latent map (its presence is its best match, i.e. the minimum squared L2
distance over locations, as in ProtoPNet, Chen et al. 2019, arXiv 1806.10574) and the
prototype's score integrates the presences of its parts ("there is a bird if there is a wing,
a beak, ..."): a non-negative weighted sum or a SoftMaxPool. The parts are not tied to each
other's positions; each goes wherever it matches best.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from whitebox.layers.base import Regularized
from whitebox.layers.pooling import SoftMaxPool

INTEGRATIONS = ("sum", "softmaxpool")
LOG_EPSILON = 1e-4  # ProtoPNet's similarity log((d + 1) / (d + eps)) is at most log(1 / eps) ~ 9.2


class PartPrototypes(Regularized):
    """``n_prototypes`` prototypes of ``parts`` vectors each in a ``dim``-channel latent map.

    Forward ``(N, dim, h, w) -> (N, n_prototypes)`` scores. Each prototype belongs to the class
    ``prototype_class[p]`` (used by the cluster/separation costs and by the push, which moves
    every part onto its nearest latent vector of a training image of that class so that a part
    *is* a patch of the training set).

    ``integrate="sum"`` adds the part similarities with learnable non-negative weights (init
    1/parts; one part has no weight, so parts=1 is exactly ProtoPNet's similarity);
    ``integrate="softmaxpool"`` takes their soft maximum at ``temperature`` (a disjunction).
    Distances are computed in float32 even under autocast (they are small differences of large
    squared norms).
    """

    def __init__(self, n_prototypes: int, parts: int, dim: int, prototype_class: Sequence[int],
                 integrate: str = "sum", temperature: float = 1.0) -> None:
        super().__init__()
        if n_prototypes < 1 or parts < 1 or dim < 1:
            raise ValueError(f"n_prototypes, parts and dim must be >= 1, got {n_prototypes}, "
                             f"{parts}, {dim}")
        if len(prototype_class) != n_prototypes:
            raise ValueError(f"prototype_class names {len(prototype_class)} classes for "
                             f"{n_prototypes} prototypes")
        if integrate not in INTEGRATIONS:
            raise ValueError(f"unknown integrate {integrate!r}; valid: {', '.join(INTEGRATIONS)}")
        self.n_prototypes = n_prototypes
        self.parts = parts
        self.dim = dim
        self.integrate = integrate
        self.parts_vectors = nn.Parameter(torch.empty(n_prototypes, parts, dim))
        self.part_weights = (nn.Parameter(torch.empty(n_prototypes, parts))
                             if integrate == "sum" and parts > 1 else None)
        self.pool = SoftMaxPool(n_prototypes, temperature) if integrate == "softmaxpool" else None
        self.register_buffer("prototype_class", torch.as_tensor(list(prototype_class), dtype=torch.long))
        # (train image index, y, x) of each part's vector after the last push; -1 before any push.
        self.register_buffer("push_source", torch.full((n_prototypes, parts, 3), -1, dtype=torch.long))
        self.min_distances: torch.Tensor | None = None  # (N, n_prototypes, parts) of the last forward
        self._push: dict[str, torch.Tensor] | None = None
        self.init_weights()

    def init_weights(self) -> None:
        """Parts uniform in [0, 1) (ProtoPNet; the add-on's sigmoid maps into the same cube)."""
        with torch.no_grad():
            self.parts_vectors.uniform_(0.0, 1.0)
            if self.part_weights is not None:
                self.part_weights.fill_(1.0 / self.parts)

    def regularize_weights(self) -> None:
        """Part weights stay >= 0: a part's presence can only add evidence for its prototype."""
        if self.part_weights is not None:
            with torch.no_grad():
                self.part_weights.clamp_(min=0.0)

    def distances(self, z: torch.Tensor) -> torch.Tensor:
        """Squared L2 distance of every part to every location: ``(N, n_prototypes, parts, h*w)``.

        ``|z|^2 - 2<z, p> + |p|^2`` with one matrix product (ProtoPNet's convolution trick),
        clamped at 0 against rounding. Float32 matmul, not a convolution: cuDNN may run float32
        convolutions in TF32, too coarse for these small differences of large squared norms.
        """
        if z.dim() != 4 or z.shape[1] != self.dim:
            raise ValueError(f"expected a latent map (N, {self.dim}, h, w), got {tuple(z.shape)}")
        n = z.shape[0]
        with torch.autocast(z.device.type, enabled=False):
            z_flat = z.float().flatten(2).transpose(1, 2)  # (N, hw, dim)
            kernels = self.parts_vectors.float().reshape(-1, self.dim)  # (P*K, dim)
            p_squared = (kernels * kernels).sum(dim=1)
            squared = torch.baddbmm(p_squared[None, None, :], z_flat,
                                    kernels.T[None].expand(n, -1, -1), alpha=-2.0)
            squared = (squared + (z_flat * z_flat).sum(dim=2, keepdim=True)).clamp_(min=0.0)
        return squared.transpose(1, 2).reshape(n, self.n_prototypes, self.parts, -1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        min_distances = self.distances(z).amin(dim=-1)
        self.min_distances = min_distances
        similarity = torch.log((min_distances + 1) / (min_distances + LOG_EPSILON))
        if self.pool is not None:
            return self.pool(similarity.reshape(z.shape[0], -1))
        if self.part_weights is None:
            return similarity[..., 0]
        return (similarity * self.part_weights.float()).sum(dim=-1)

    @torch.no_grad()
    def part_locations(self, z: torch.Tensor) -> torch.Tensor:
        """Where each part matches best in ``z``: ``(N, n_prototypes, parts, 2)`` as (y, x)."""
        index = self.distances(z).argmin(dim=-1)
        width = z.shape[-1]
        return torch.stack([index // width, index % width], dim=-1)

    # -- push: move every part onto its nearest training latent vector of its prototype's class

    def begin_push(self) -> None:
        """Start a push; ``observe`` every training batch, then ``end_push``."""
        shape = (self.n_prototypes, self.parts)
        device = self.parts_vectors.device
        self._push = {
            "distance": torch.full(shape, float("inf"), device=device),
            "vectors": self.parts_vectors.detach().float().clone(),
            "source": torch.full((*shape, 3), -1, dtype=torch.long, device=device),
        }

    @torch.no_grad()
    def observe(self, z: torch.Tensor, labels: torch.Tensor, first_index: int) -> None:
        """Offer the latent maps ``z`` of training images ``first_index, first_index + 1, ...``.

        For every part, the nearest vector ``z[n, :, y, x]`` among images whose label is the
        prototype's class replaces the best so far if it is strictly closer (so ties keep the
        earliest image and location: the push does not depend on the batch size).
        """
        if self._push is None:
            raise RuntimeError("observe() outside a push: call begin_push() first")
        width = z.shape[-1]
        at_location, location = self.distances(z).min(dim=-1)  # (N, P, K): first best location
        foreign = labels.to(z.device)[:, None] != self.prototype_class[None, :]  # (N, P)
        at_location = at_location.masked_fill(foreign[:, :, None], float("inf"))
        best, image = at_location.min(dim=0)  # (P, K): first best image
        better = best < self._push["distance"]
        location = location.gather(0, image[None]).squeeze(0)
        y, x = location // width, location % width
        vectors = z.float()[image, :, y, x]  # (P, K, dim)
        push = self._push
        push["distance"] = torch.where(better, best, push["distance"])
        push["vectors"] = torch.where(better[..., None], vectors, push["vectors"])
        source = torch.stack([image + first_index, y, x], dim=-1)
        push["source"] = torch.where(better[..., None], source, push["source"])

    @torch.no_grad()
    def end_push(self) -> None:
        """Copy the pushed vectors into the parts; a prototype whose class was never seen keeps
        its vector (and its previous ``push_source``)."""
        if self._push is None:
            raise RuntimeError("end_push() without begin_push()")
        found = self._push["source"][..., 0] >= 0
        self.parts_vectors.copy_(torch.where(found[..., None], self._push["vectors"],
                                             self.parts_vectors.float()))
        self.push_source.copy_(torch.where(found[..., None], self._push["source"], self.push_source))
        self._push = None

    @property
    def pushing(self) -> bool:
        """True between ``begin_push`` and ``end_push``."""
        return self._push is not None

    def extra_repr(self) -> str:
        return (f"n_prototypes={self.n_prototypes}, parts={self.parts}, dim={self.dim}, "
                f"integrate={self.integrate!r}")
