"""Normalisation studies of the log (07.10–21.10.2024): whitening and percentile normalisation.

* ``IterNorm``: Iterative Normalization (Huang et al. 2019, arXiv 1904.03441), grouped whitening
  by T Newton steps towards ``Sigma^{-1/2}``; no eigendecomposition, so it is cheap and stable.
* ``DecorrelatedBatchNorm``: Decorrelated BN (Huang et al. 2018, arXiv 1804.08450), grouped ZCA
  whitening by an exact eigendecomposition of the covariance.
* ``PercentileNorm``: the log's "Percentile Normalization": each unit may respond to at most the top
  k % of the batch.

All three take ``(N, C)`` or ``(N, C, H, W)`` inputs; statistics are taken over the batch and, for
4-D inputs, over the spatial positions too (as BatchNorm2d does). In training they use batch
statistics and update running ones with ``momentum``; in eval they use only the running ones, so an
example's output does not depend on the rest of its batch. BatchNorm with ``affine=False`` needs
nothing new: ``nn.BatchNorm2d(C, affine=False)``.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn


def _group_size(num_features: int, num_groups: int | None, group_size: int | None) -> int:
    """Channels per group from either ``num_groups`` or ``group_size`` (default: one group of <= 64)."""
    if num_groups is not None and group_size is not None:
        raise ValueError("give num_groups or group_size, not both")
    if num_groups is not None:
        if num_groups <= 0 or num_features % num_groups:
            raise ValueError(f"{num_features} features do not split into {num_groups} equal groups")
        return num_features // num_groups
    if group_size is None:
        group_size = min(num_features, 64)
    if group_size <= 0 or num_features % group_size:
        raise ValueError(f"{num_features} features do not split into groups of {group_size}")
    return group_size


def _to_channel_rows(x: torch.Tensor, num_features: int) -> torch.Tensor:
    """``(N, C)`` or ``(N, C, H, W)`` -> ``(C, m)`` with m = N (x H x W) samples per channel."""
    if x.dim() not in (2, 4):
        raise ValueError(f"expected (N, C) or (N, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] != num_features:
        raise ValueError(f"expected {num_features} channels, got {x.shape[1]}")
    return x.movedim(1, 0).reshape(num_features, -1)


def _from_channel_rows(rows: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Inverse of ``_to_channel_rows``: ``(C, m)`` back to the layout of ``like``."""
    shape = (like.shape[1], like.shape[0], *like.shape[2:])
    return rows.reshape(shape).movedim(0, 1)


def _full_precision(x: torch.Tensor) -> tuple[torch.Tensor, contextlib.AbstractContextManager]:
    """Work in float32 (and outside autocast) when the input is half precision: matrix powers and
    square roots of covariances lose too much in 16 bits."""
    if x.dtype in (torch.float16, torch.bfloat16):
        return x.float(), torch.autocast(device_type=x.device.type, enabled=False)
    return x, contextlib.nullcontext()


class _GroupWhitening(nn.Module):
    """Shared state of the whitening layers: groups, running mean and running whitening matrix."""

    def __init__(
        self,
        num_features: int,
        num_groups: int | None = None,
        group_size: int | None = None,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = False,
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.group_size = _group_size(num_features, num_groups, group_size)
        self.num_groups = num_features // self.group_size
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        d, g = self.group_size, self.num_groups
        self.register_buffer("running_mean", torch.zeros(g, d, 1))
        self.register_buffer("running_wm", torch.eye(d).expand(g, d, d).clone())
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def whitening_matrix(self, centred: torch.Tensor) -> torch.Tensor:
        """``(G, d, m)`` centred groups -> ``(G, d, d)`` whitening matrices."""
        raise NotImplementedError

    def covariance(self, centred: torch.Tensor) -> torch.Tensor:
        """``eps I + Xc Xc^T / m`` per group, batched."""
        d, m = centred.shape[1], centred.shape[2]
        eye = torch.eye(d, dtype=centred.dtype, device=centred.device).expand(centred.shape[0], d, d)
        return torch.baddbmm(eye, centred, centred.transpose(1, 2), beta=self.eps, alpha=1.0 / m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        work, precision = _full_precision(x)
        with precision:
            rows = _to_channel_rows(work, self.num_features)
            groups = rows.reshape(self.num_groups, self.group_size, -1)
            if self.training:
                mean = groups.mean(dim=2, keepdim=True)
                centred = groups - mean
                wm = self.whitening_matrix(centred)
                with torch.no_grad():
                    self.running_mean.lerp_(mean.to(self.running_mean.dtype), self.momentum)
                    self.running_wm.lerp_(wm.to(self.running_wm.dtype), self.momentum)
            else:
                centred = groups - self.running_mean.to(groups.dtype)
                wm = self.running_wm.to(groups.dtype)
            out = torch.bmm(wm, centred).reshape(self.num_features, -1)
            if self.affine:
                out = out * self.weight.to(out.dtype)[:, None] + self.bias.to(out.dtype)[:, None]
        return _from_channel_rows(out, work).to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, num_groups={self.num_groups}, group_size={self.group_size}, "
            f"eps={self.eps}, momentum={self.momentum}, affine={self.affine}"
        )


class IterNorm(_GroupWhitening):
    """Iterative Normalization: whiten each group of d channels with T Newton iterations.

    Per group: ``mu`` = mean over batch (and space), ``Sigma = eps I + Xc Xc^T / m``,
    ``Sigma_N = Sigma / tr Sigma``, ``P_0 = I``, ``P_k = 1.5 P_{k-1} - 0.5 P_{k-1}^3 Sigma_N`` for
    k = 1..T, and ``x_hat = P_T / sqrt(tr Sigma) (x - mu)`` (P_T computed by the algebraically identical,
    numerically stable coupled iteration, see ``whitening_matrix``). Dividing by the trace puts Sigma_N's
    eigenvalues in (0, 1], where the iteration converges to ``Sigma_N^{-1/2}``, so the output tends to
    the ZCA-whitened input as T grows; a small T whitens only partially (the paper's T = 5). The
    running mean and whitening matrix (momentum updates) are used in eval.
    """

    def __init__(
        self,
        num_features: int,
        num_groups: int | None = None,
        group_size: int | None = None,
        T: int = 5,  # the paper's name for the number of Newton iterations
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = False,
    ) -> None:
        super().__init__(num_features, num_groups, group_size, eps, momentum, affine)
        if T < 0:
            raise ValueError(f"T must be >= 0, got {T}")
        self.T = T

    def whitening_matrix(self, centred: torch.Tensor) -> torch.Tensor:
        sigma = self.covariance(centred)
        trace = sigma.diagonal(dim1=1, dim2=2).sum(dim=1).view(-1, 1, 1)
        sigma_n = sigma / trace
        eye = torch.eye(sigma.shape[1], dtype=sigma.dtype, device=sigma.device).expand_as(sigma)
        # Coupled Newton-Schulz form: with Y_0 = Sigma_N, Z_0 = I and M = 1.5 I - 0.5 Z Y,
        # Y <- Y M and Z <- M Z give Z_k = P_k exactly (P_k is a polynomial in Sigma_N, so
        # Y_k = Sigma_N P_k); same cost, but rounding errors do not grow. The literal
        # P <- 1.5 P - 0.5 P^3 Sigma_N is numerically unstable for ill-conditioned Sigma and blows up
        # in float32 after ~10 steps.
        y, z = sigma_n, eye
        for step in range(self.T):
            m = torch.baddbmm(eye, z, y, beta=1.5, alpha=-0.5)
            if step < self.T - 1:
                y = torch.bmm(y, m)
            z = torch.bmm(m, z)
        return z / trace.sqrt()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, T={self.T}"


class DecorrelatedBatchNorm(_GroupWhitening):
    """Decorrelated Batch Normalization: exact ZCA whitening of each group of d channels.

    ``W = U diag(lambda)^{-1/2} U^T`` from the eigendecomposition ``Sigma = U diag(lambda) U^T`` of
    ``Sigma = eps I + Xc Xc^T / m`` (for a symmetric PSD matrix this is its SVD). ZCA (rather than
    PCA) whitening is the rotation-free choice, so each output channel stays closest to its input
    channel. The decomposition runs in float64 for stability; its gradient is ill-conditioned when two
    eigenvalues nearly coincide, which is why the paper keeps groups small.
    """

    def whitening_matrix(self, centred: torch.Tensor) -> torch.Tensor:
        sigma = self.covariance(centred.double())
        eigenvalues, eigenvectors = torch.linalg.eigh(sigma)
        inv_sqrt = eigenvalues.clamp_min(self.eps).rsqrt()
        wm = (eigenvectors * inv_sqrt.unsqueeze(1)) @ eigenvectors.transpose(1, 2)
        return wm.to(centred.dtype)


class PercentileNorm(nn.Module):
    """Shift each unit so that it is positive on at most the top ``percent`` % of the batch.

    Exact definition: for unit c let ``n`` be its number of responses in the batch (N for ``(N, C)``
    inputs, N x H x W for ``(N, C, H, W)``: spatial positions count as samples, as in BatchNorm2d) and
    ``k = floor(percent / 100 * n)``. The threshold ``q_c`` is the ``(n - k)``-th smallest response
    (the lower nearest-rank (100 - percent)-th percentile) and the output is ``x - q_c``. Hence at
    most k responses of the unit are strictly positive, so after a ReLU no unit fires on more than
    ``percent`` % of the batch and no unit can dominate the representation. In training ``q_c`` is
    computed from the batch (gradients flow through it, as through BatchNorm's mean) and a running
    threshold is updated with ``momentum``; eval subtracts the running threshold.
    """

    def __init__(self, num_features: int, percent: float = 10.0, momentum: float = 0.1) -> None:
        super().__init__()
        if not 0 <= percent <= 100:
            raise ValueError(f"percent must be in [0, 100], got {percent}")
        self.num_features = num_features
        self.percent = percent
        self.momentum = momentum
        self.register_buffer("running_threshold", torch.zeros(num_features))

    def batch_threshold(self, rows: torch.Tensor) -> torch.Tensor:
        """``(C, n)`` responses -> ``(C,)`` thresholds with at most floor(percent % of n) above."""
        n = rows.shape[1]
        above = int(self.percent / 100 * n)
        return rows.kthvalue(max(n - above, 1), dim=1).values

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = _to_channel_rows(x, self.num_features)
        if self.training:
            threshold = self.batch_threshold(rows)
            with torch.no_grad():
                self.running_threshold.lerp_(threshold.to(self.running_threshold.dtype), self.momentum)
        else:
            threshold = self.running_threshold.to(x.dtype)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x - threshold.view(shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, percent={self.percent}, momentum={self.momentum}"
