"""INH's decisions must not follow the last bit of a float32 GEMM.

A float32 matrix product rounds each entry differently under another blocking: another thread
count, other matrix shapes (a batch, a subset of it, the transposed product). INH sets a slot's
threshold ``eps`` above its hardest negative, so margins tie at ``-eps`` up to that rounding and
the max pooling's winner, growth and pruning follow it: a rerun with another thread count (a
SLURM retry on another node, ``--threads``) did not continue the interrupted run bit for bit.
These tests fail with ``unit @ weight.t()`` in float32 and pass with ``similarities``.
"""

from __future__ import annotations

import signal

import pytest
import torch
import torch.nn.functional as F

from tests.test_training import interruptible_run, without_time
from whitebox.layers import IncrementalNeuralHashing
from whitebox.training import TrainingInterrupted

INH = {"model_args": {"lr": 2.0, "training_thresholds": "running"}, "random_labels": True}
STEPS = 16  # 2 epochs of 8 steps on the toy problem


@pytest.fixture
def threads():
    """Set torch's thread count inside a test; the previous count comes back afterwards."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def uninterrupted():
    """The toy INH run with 2 threads, uninterrupted: its records and state_dict."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model, records = interruptible_run("inh", None, **INH)
    finally:
        torch.set_num_threads(before)
    return without_time(records), model.state_dict()


def layer_with_slots(n_slots: int = 120, dim: int = 3072) -> IncrementalNeuralHashing:
    g = torch.Generator().manual_seed(0)
    layer = IncrementalNeuralHashing(dim, 2)
    x = torch.randn(n_slots, dim, generator=g)
    layer.add_slots(x, torch.arange(n_slots) % 2, candidates=(x, torch.arange(n_slots) % 2))
    return layer


def test_slot_margins_do_not_depend_on_the_batch_the_operand_order_or_the_thread_count(threads):
    layer = layer_with_slots()
    x = torch.randn(32, 3072, generator=torch.Generator().manual_seed(1))
    threads(2)
    margins = layer.slot_margins(x)
    assert torch.equal(layer.slot_margins(x[:7]), margins[:7])  # a subset of the batch
    assert torch.equal(torch.cat([layer.slot_margins(row[None]) for row in x]), margins)
    for count in (1, 3):
        threads(count)
        assert torch.equal(layer.slot_margins(x), margins), f"{count} threads"
    # The transposed product (growth's coverage matrix) holds the same numbers.
    from whitebox.layers.hashing import similarities

    unit = F.normalize(x, dim=1)
    assert torch.equal(similarities(layer.weight, unit).t(), similarities(unit, layer.weight))


@pytest.mark.parametrize("count", [1, 3])
def test_training_does_not_depend_on_the_thread_count(threads, uninterrupted, count):
    records, state = uninterrupted
    assert [(r["slots"], r["pruned"]) for r in records] == [(97, 0), (125, 5)]
    threads(count)
    model, other_records = interruptible_run("inh", None, **INH)
    assert without_time(other_records) == records
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key], value), key


@pytest.mark.parametrize("at", range(1, STEPS + 1))
def test_sigterm_at_any_step_resumes_bit_for_bit_with_another_thread_count(tmp_path, threads,
                                                                          uninterrupted, at):
    """Interrupted at step ``at`` with 1 thread, rerun with 2: the uninterrupted run's result."""
    full_records, full_state = uninterrupted
    checkpoint = tmp_path / "checkpoint.pt"
    threads(1)
    with pytest.raises(TrainingInterrupted) as stopped:
        interruptible_run("inh", checkpoint, at=at, **INH)
    assert f"after step {(at - 1) % 8 + 1}/8" in str(stopped.value)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    threads(2)
    resumed, resumed_records = interruptible_run("inh", checkpoint, **INH)
    assert without_time(resumed_records) == full_records
    assert resumed.state_dict().keys() == full_state.keys()
    for key, value in full_state.items():
        assert torch.equal(resumed.state_dict()[key], value), key
