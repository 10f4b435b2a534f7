"""Parallel designs of the log (30.09–07.10.2024): branches with matching outputs, combined.

A "parallel layer" is a list of ordinary layers (or whole networks) that see the same input; their
outputs are concatenated along the feature dimension. The extreme case is a SoftMaxPool over N
independently initialised copies of one network: a soft maximum over the copies, per feature.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn

COMBINES = ("concat", "softmaxpool")


def copies(builder: Callable[[], nn.Module] | nn.Module, n: int) -> list[nn.Module]:
    """``n`` independently initialised copies of one network.

    ``builder`` is a zero-argument function that returns a fresh module (called n times), or a module:
    then each copy is a deep copy whose submodules are re-initialised with their own
    ``reset_parameters()`` / ``init_weights()``, so no two copies share weights or start equal.
    """
    if n < 1:
        raise ValueError(f"need at least one copy, got n={n}")
    if isinstance(builder, nn.Module):
        template = builder
        result = []
        for _ in range(n):
            module = copy.deepcopy(template)
            _reinitialise(module)
            result.append(module)
        return result
    result = [builder() for _ in range(n)]
    if len({id(module) for module in result}) != n:
        raise ValueError("builder returned the same module twice; it must build a new one on every call")
    return result


def _reinitialise(module: nn.Module) -> None:
    """Fresh random parameters for every submodule that knows how to initialise itself."""
    for sub in module.modules():
        if hasattr(sub, "reset_parameters"):
            sub.reset_parameters()
        elif hasattr(sub, "init_weights"):
            sub.init_weights()


class Parallel(nn.Module):
    """Run N branches on the same input and combine their outputs.

    ``combine="concat"``: outputs are concatenated along dim 1 (features/channels); all other
    dimensions must match. ``combine="softmaxpool"``: outputs must have identical shapes; they are
    stacked to ``(N, B, ...)`` and reduced by the soft maximum over the copies,
    ``sum_i softmax(x_i / T) * x_i`` per feature, which tends to the maximum as T -> 0 and to the
    mean as T -> inf (a differentiable disjunction over the branches, as in ``SoftMaxPool``).

    ``branches`` is a list of modules, or a builder (zero-argument function or template module) with
    ``n`` to make n independently initialised copies (see ``copies``).
    """

    def __init__(
        self,
        branches: Sequence[nn.Module] | Callable[[], nn.Module] | nn.Module,
        n: int | None = None,
        combine: str = "concat",
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        if combine not in COMBINES:
            raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if isinstance(branches, (list, tuple, nn.ModuleList)):
            modules = list(branches)
            if n is not None and n != len(modules):
                raise ValueError(f"n={n} but {len(modules)} branches were given")
        else:
            if n is None:
                raise ValueError("a builder needs n, the number of copies")
            modules = copies(branches, n)
        if not modules:
            raise ValueError("Parallel needs at least one branch")
        self.branches = nn.ModuleList(modules)
        self.combine = combine
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [branch(x) for branch in self.branches]
        if self.combine == "concat":
            reference = outputs[0].shape
            for i, out in enumerate(outputs):
                if out.dim() < 2 or out.shape[:1] + out.shape[2:] != reference[:1] + reference[2:]:
                    raise ValueError(
                        f"branch {i} output {tuple(out.shape)} does not match branch 0 "
                        f"{tuple(reference)} outside dim 1; concat needs matching outputs"
                    )
            return torch.cat(outputs, dim=1)
        for i, out in enumerate(outputs):
            if out.shape != outputs[0].shape:
                raise ValueError(
                    f"branch {i} output {tuple(out.shape)} differs from branch 0 "
                    f"{tuple(outputs[0].shape)}; softmaxpool needs identical shapes"
                )
        stacked = torch.stack(outputs, dim=0)
        weights = torch.softmax(stacked / self.temperature, dim=0)
        return (weights * stacked).sum(dim=0)

    def extra_repr(self) -> str:
        return f"n={len(self.branches)}, combine={self.combine!r}, temperature={self.temperature}"
