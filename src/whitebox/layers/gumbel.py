"""GumbelConv2d: a convolution whose every unit looks at one (or top-k) input channel per kernel position.

From the log (22.07-02.09.2024): a kernel that attends to one input channel per spatial position reads
as "this feature in the centre, that one to the top-left, ...", so a unit can be explained top-down.
The channel choice is learnt through the Gumbel-softmax trick; tau is annealed during training so the
sampled choice approaches the argmax of the logits (see ``GumbelConv2d.selection``), and at eval the
choice is that deterministic argmax.

Parameterisation (per output unit ``o`` and kernel position ``(i, j)``):

* ``channel_logits[o, :, i, j]`` (shape ``(out, in, kh, kw)``): logits of a categorical distribution
  over the input channels (multiplied by ``logit_scale`` before the softmax);
* ``magnitudes[o, 0, i, j]`` (shape ``(out, 1, kh, kw)``): the weight the selected channel(s) get;
* ``bias[o]`` (optional).

The effective kernel is ``selection * magnitudes`` (selection: one-hot / k-hot over the in-channel axis,
straight-through in training when ``hard``), fed to ``F.conv2d``. One selection is drawn per forward
pass and shared by the whole batch (it is a kernel, not an activation). The layer therefore has
``out*kh*kw`` MORE parameters than the ``nn.Conv2d`` it replaces (the log notes this): the logits alone
are as many as Conv2d's weights, see ``parameter_count_vs_conv2d()``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from whitebox.layers.base import TrainingHook

_EPS = 1e-20


def annealed_tau(epoch: int, epochs: int, start: float, end: float) -> float:
    """Exponential annealing of tau: ``start`` at epoch 0, ``end`` at epoch ``epochs - 1``.

    ``tau(e) = start * (end / start) ** (e / (epochs - 1))``, i.e. a constant factor per epoch, so the
    Gumbel-softmax sample approaches one-hot as training progresses (the log's requirement). Epochs
    outside ``[0, epochs - 1]`` are clamped; a one-epoch run uses ``start``.
    """
    if start <= 0 or end <= 0:
        raise ValueError(f"tau must be > 0, got start={start}, end={end}")
    if epochs <= 1:
        return float(start)
    progress = min(max(epoch, 0), epochs - 1) / (epochs - 1)
    return float(start * (end / start) ** progress)


def conv2d_parameter_count(in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                           bias: bool = True) -> int:
    """Number of parameters of ``nn.Conv2d`` with these arguments (built on the meta device: no memory)."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, bias=bias, device="meta")
    return sum(p.numel() for p in conv.parameters())


def gumbel_topk(logits: torch.Tensor, tau: float, topk: int = 1, hard: bool = True,
                dim: int = -1) -> torch.Tensor:
    """Gumbel-softmax sample of a ``topk``-hot vector along ``dim``.

    ``topk == 1`` is ``F.gumbel_softmax``. For ``topk > 1`` and ``hard`` it is the log's "gumbel_softmax
    taking the top-k instead of the max": the k-hot vector of the top-k perturbed logits in the forward
    pass, with the gradient of the soft probabilities (straight-through). For ``topk > 1`` and not
    ``hard`` it is the relaxed k-hot of Xie & Ermon (2019): k successive softmaxes, each masking what
    was already taken, summed (non-negative, sum k, an entry may slightly exceed 1; the plain soft
    sample for k = 1).
    """
    if topk == 1:
        return F.gumbel_softmax(logits, tau=tau, hard=hard, dim=dim)
    gumbels = -torch.empty_like(logits).exponential_().log()
    perturbed = logits + gumbels
    if hard:
        soft = torch.softmax(perturbed / tau, dim=dim)
        # Rank the perturbed logits, not ``soft``: at small tau the softmax underflows to ties at 0.
        index = perturbed.topk(topk, dim=dim).indices
        khot = torch.zeros_like(soft).scatter_(dim, index, 1.0)
        return khot - soft.detach() + soft
    relaxed = torch.zeros_like(perturbed)
    onehot = torch.zeros_like(perturbed)
    scores = perturbed
    for _ in range(topk):
        scores = scores + torch.log((1.0 - onehot).clamp_min(_EPS))
        onehot = torch.softmax(scores / tau, dim=dim)
        relaxed = relaxed + onehot
    return relaxed


class GumbelConv2d(TrainingHook):
    """Conv2d in which each output unit selects ``topk`` input channels per kernel position.

    In training the selection is a Gumbel-softmax sample over the learnable ``channel_logits``
    (straight-through one-hot / k-hot when ``hard``; soft otherwise) at temperature ``tau``; at eval it
    is the deterministic top-k of the logits (no sampling), whatever ``hard`` says. ``tau`` is a plain
    attribute that a schedule sets between epochs (``set_tau(annealed_tau(...))``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] | str = 0,
                 hard: bool = True, topk: int = 1, tau: float = 1.0, logit_scale: float = 1.0,
                 bias: bool = True) -> None:
        super().__init__()
        if not 1 <= topk <= in_channels:
            raise ValueError(f"topk must be in [1, in_channels={in_channels}], got {topk}")
        if logit_scale <= 0:
            raise ValueError(f"logit_scale must be > 0, got {logit_scale}")
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = (kh, kw)
        self.stride = stride
        self.padding = padding
        self.hard = hard
        self.topk = topk
        self.logit_scale = float(logit_scale)
        self.tau = 1.0
        self.set_tau(tau)
        self.channel_logits = nn.Parameter(torch.empty(out_channels, in_channels, kh, kw))
        self.magnitudes = nn.Parameter(torch.empty(out_channels, 1, kh, kw))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Logits near zero (uniform choice at first, ties broken at random); magnitudes and bias with
        Conv2d's default bound ``1/sqrt(fan_in)``, where fan_in counts only the selected inputs
        (``topk * kh * kw``), so the output scale matches a Conv2d of that fan-in."""
        nn.init.normal_(self.channel_logits, std=1e-2)
        bound = 1.0 / math.sqrt(self.topk * self.kernel_size[0] * self.kernel_size[1])
        nn.init.uniform_(self.magnitudes, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def set_tau(self, value: float) -> None:
        """Set the Gumbel-softmax temperature (lower = closer to one-hot)."""
        if value <= 0:
            raise ValueError(f"tau must be > 0, got {value}")
        self.tau = float(value)

    def selection(self) -> torch.Tensor:
        """The channel selection, shape ``(out, in, kh, kw)``: sampled in training, top-k at eval.

        Training samples from ``softmax(logits / tau)``: the Gumbel perturbation is added to
        ``logits / tau``. With the textbook ``F.gumbel_softmax(logits, tau, hard=True)`` the hard
        sample is ``argmax(logits + g)``, whose distribution is ``softmax(logits)`` whatever tau
        is: tau only sharpens the straight-through gradient, so the sampled choice stays as
        random as the logits and the deterministic eval choice differs from what training (and
        BatchNorm's running statistics) saw. Scaling the logits by ``1 / tau`` instead makes
        the samples themselves approach the argmax as tau is annealed, the log's requirement.
        """
        logits = self.channel_logits * self.logit_scale
        if not self.training:
            index = logits.topk(self.topk, dim=1).indices
            return torch.zeros_like(logits).scatter_(1, index, 1.0)
        return gumbel_topk(logits / self.tau, tau=1.0, topk=self.topk, hard=self.hard, dim=1)

    def effective_weight(self) -> torch.Tensor:
        """The kernel ``F.conv2d`` uses: selection times magnitudes, shape ``(out, in, kh, kw)``."""
        return self.selection() * self.magnitudes

    def selected_channels(self) -> torch.Tensor:
        """Indices of the input channels each unit uses at eval, shape ``(out, topk, kh, kw)``."""
        return self.channel_logits.detach().topk(self.topk, dim=1).indices

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.effective_weight(), self.bias, stride=self.stride, padding=self.padding)

    def parameter_count_vs_conv2d(self) -> dict[str, int]:
        """This layer's parameter count next to the ``nn.Conv2d`` of the same shape it replaces."""
        return {
            "gumbel_conv2d": sum(p.numel() for p in self.parameters()),
            "conv2d": conv2d_parameter_count(self.in_channels, self.out_channels, self.kernel_size,
                                             bias=self.bias is not None),
        }

    def metrics_fields(self, name: str, n_train: int) -> dict:
        """metrics.json's ``gumbel_layers``: each layer's parameter count vs Conv2d's."""
        return {"gumbel_layers": {name: self.parameter_count_vs_conv2d()}}

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, hard={self.hard}, topk={self.topk}, "
                f"tau={self.tau:g}, logit_scale={self.logit_scale:g}, bias={self.bias is not None}")
