import itertools
import math

import pytest
import torch

from whitebox.layers.set_cover import greedy_set_cover, naive_cover


def covered(coverage: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    if chosen.numel() == 0:
        return torch.zeros(coverage.shape[1], dtype=torch.bool)
    return coverage[chosen].any(dim=0)


def optimum(coverage: torch.Tensor) -> int:
    """Smallest number of sets covering every coverable element (brute force)."""
    target = coverage.any(dim=0)
    for size in range(coverage.shape[0] + 1):
        for subset in itertools.combinations(range(coverage.shape[0]), size):
            if torch.equal(covered(coverage, torch.tensor(subset, dtype=torch.long)), target):
                return size
    raise AssertionError("unreachable")


def test_disjoint_sets_are_all_needed_and_taken_largest_first():
    coverage = torch.tensor([[1, 0, 0, 0, 0, 0],
                             [0, 1, 1, 1, 0, 0],
                             [0, 0, 0, 0, 1, 1]], dtype=torch.bool)
    assert greedy_set_cover(coverage).tolist() == [1, 2, 0]


def test_nested_sets_pick_the_superset_only():
    coverage = torch.tensor([[1, 1, 0, 0],
                             [1, 1, 1, 1],
                             [0, 0, 1, 0]], dtype=torch.bool)
    assert greedy_set_cover(coverage).tolist() == [1]


def test_identity_and_empty_inputs():
    assert greedy_set_cover(torch.eye(5, dtype=torch.bool)).tolist() == [0, 1, 2, 3, 4]
    assert greedy_set_cover(torch.zeros(3, 4, dtype=torch.bool)).tolist() == []
    assert greedy_set_cover(torch.zeros(0, 4, dtype=torch.bool)).tolist() == []
    with pytest.raises(ValueError, match="bool"):
        greedy_set_cover(torch.ones(2, 2))


@pytest.mark.parametrize("seed", range(40))
def test_random_instances_cover_everything_within_the_greedy_bound(seed):
    g = torch.Generator().manual_seed(seed)
    n_sets, n_elements = 7, int(torch.randint(3, 12, (1,), generator=g))
    coverage = torch.rand(n_sets, n_elements, generator=g) < 0.3
    chosen = greedy_set_cover(coverage)
    assert torch.equal(covered(coverage, chosen), coverage.any(dim=0))
    assert len(set(chosen.tolist())) == chosen.numel()  # no set twice
    best = optimum(coverage)
    assert chosen.numel() <= best * (math.log(n_elements) + 1)
    assert chosen.numel() >= best


def test_matches_a_plain_python_greedy():
    g = torch.Generator().manual_seed(0)
    coverage = torch.rand(60, 200, generator=g) < 0.05
    remaining, expected = set(range(200)), []
    sets = [set(torch.nonzero(row).flatten().tolist()) for row in coverage]
    while True:
        gains = [len(s & remaining) for s in sets]
        best = max(range(len(sets)), key=lambda k: (gains[k], -k))
        if gains[best] == 0:
            break
        expected.append(best)
        remaining -= sets[best]
    assert greedy_set_cover(coverage).tolist() == expected


def test_naive_cover_takes_every_element_its_own_set_covers():
    coverage = torch.tensor([[1, 1, 1, 0],
                             [1, 1, 1, 0],
                             [0, 0, 0, 0],  # cannot cover itself (an identical other-class example)
                             [0, 0, 0, 1]], dtype=torch.bool)
    assert naive_cover(coverage).tolist() == [0, 1, 3]
    assert greedy_set_cover(coverage).tolist() == [0, 3]
    with pytest.raises(ValueError, match="square"):
        naive_cover(coverage[:3])
