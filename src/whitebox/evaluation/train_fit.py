"""How much better a trained model fits its training images than its test images.

The log found that GumbelConv with 1x1 mixing "overfits less" than Conv2d with the same mixing
(22.07-29.07.2024). The training log's train accuracy is a running mean over an epoch of
augmented batches in train mode (dropout, batch statistics, Gumbel samples), so its gap to
the test accuracy mixes overfitting with augmentation and train-mode noise. :func:`evaluate`
measures both splits the same way instead: the final model in eval mode on the un-augmented
training images (with their stored labels: flip_labels acts in training only) and on the test
images.
"""

from __future__ import annotations

from whitebox.evaluation.accuracy import predict


def evaluate(job) -> dict:
    """The ``train_fit`` evaluation kind: ``train_accuracy`` and ``test_accuracy`` (%) in eval
    mode, and their difference ``gap`` (points)."""
    from whitebox.data.dataset import load_prepared

    dataset = load_prepared(job.data, job.state["spec"]["classes"])
    device = next(job.model.parameters()).device
    accuracy = {}
    for split in ("train", "test"):
        images, labels = getattr(dataset, split).images, getattr(dataset, split).labels
        correct = predict(job.model, images.to(device)).cpu() == labels
        accuracy[split] = 100.0 * float(correct.float().mean())
    return {"n_train": int(dataset.train.labels.numel()), "n_test": int(dataset.test.labels.numel()),
            "train_accuracy": round(accuracy["train"], 4), "test_accuracy": round(accuracy["test"], 4),
            "gap": round(accuracy["train"] - accuracy["test"], 4)}
