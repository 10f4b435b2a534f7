"""Greedy set cover as tensor operations (the slot-selection step of Incremental Neural Hashing).

Choosing the fewest new slots that cover every unmatched example is the set cover
problem; the classic greedy rule (repeatedly take the set covering most uncovered
elements) is within a factor ln(n) + 1 of the optimum. ``naive_cover`` is the ablation
without it: every element is covered by its own set.
"""

from __future__ import annotations

import torch


def greedy_set_cover(coverage: torch.Tensor) -> torch.Tensor:
    """Indices of the sets chosen greedily, in the order chosen.

    ``coverage`` is a bool matrix ``(n_sets, n_elements)``: ``coverage[k, i]`` means set
    ``k`` covers element ``i``. Elements no set covers stay uncovered. Ties go to the
    lowest set index, so the result is deterministic. Cost: one matrix-vector product to
    start, then each pick updates the counts with the columns it newly covers, so the
    total work is O(n_sets * n_elements) however many sets are picked.
    """
    if coverage.dim() != 2 or coverage.dtype != torch.bool:
        raise ValueError(f"coverage must be a 2-D bool tensor, got {coverage.dtype} "
                         f"{tuple(coverage.shape)}")
    covered_by = coverage.t().to(torch.float32).contiguous()  # (elements, sets): rows gather fast
    counts = covered_by.sum(dim=0)  # uncovered elements each set would cover
    uncovered = torch.ones(coverage.shape[1], dtype=torch.bool, device=coverage.device)
    chosen: list[int] = []
    while counts.numel():
        best = int(torch.argmax(counts))  # first maximum: lowest index on ties
        if counts[best] <= 0:
            break
        chosen.append(best)
        newly = coverage[best] & uncovered
        uncovered &= ~newly
        counts -= covered_by[newly].sum(dim=0)
    return torch.tensor(chosen, dtype=torch.long, device=coverage.device)


def naive_cover(coverage: torch.Tensor) -> torch.Tensor:
    """Indices of the sets that cover the element of their own index, in order: every element
    its own set, no search (``coverage`` square, sets and elements the same examples). An
    element its own set does not cover (an identical example of another class) stays uncovered.
    """
    if coverage.dim() != 2 or coverage.dtype != torch.bool or coverage.shape[0] != coverage.shape[1]:
        raise ValueError(f"coverage must be a square bool tensor, got {coverage.dtype} "
                         f"{tuple(coverage.shape)}")
    return torch.nonzero(coverage.diagonal()).flatten()
