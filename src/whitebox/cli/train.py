"""``whitebox train``: train one experiment (a run spec) for one seed and write its results.

It only orchestrates: the spec is checked where it is parsed (``RunSpec.from_json``), the
settings where they are read (``TrainSettings.from_config``), pretrained weights load in
``whitebox.models.pretrained``, and what a stage adds to ``metrics.json`` comes from its
training hooks (``whitebox.training.hooks``).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from dataclasses import asdict
from pathlib import Path

from whitebox.cli.common import add_threads, use_threads
from whitebox.errors import ConfigError


def configure(command: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", required=True, help="the run spec as JSON (RunSpec.to_json)")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--data", required=True, help="prepared tensors of the base dataset")
    parser.add_argument("--out-dir", required=True, help="results/<dataset>/<experiment>/seed<N>")
    parser.add_argument("--device", default="auto",
                        help="auto (a free GPU, else CPU), cpu, cuda or cuda:N")
    add_threads(parser)
    parser.add_argument("--mirror", default=None, help="data_mirror: pretrained weights are read there")
    parser.set_defaults(run=run)


def _within(spec_name: str, error: ConfigError) -> ConfigError:
    """A spec-relative config error (``config error at training/...``) located in config.yaml."""
    text = str(error)
    prefix = "config error at "
    if text.startswith(prefix) and not text.startswith(f"{prefix}experiments/"):
        text = f"{prefix}experiments/{spec_name}/{text[len(prefix):]}"
    return ConfigError(text)


def run(args: argparse.Namespace) -> None:
    import torch

    from whitebox.data.dataset import load_prepared, mean_std
    from whitebox.data.weights import IMAGENET_MEAN, IMAGENET_STD
    from whitebox.evaluation.accuracy import accuracy_report, predict
    from whitebox.io import atomic_write, save_json, save_torch
    from whitebox.models.pretrained import load_pretrained
    from whitebox.models.registry import build_classifier
    from whitebox.provenance import git_commit, library_versions
    from whitebox.spec import RunSpec
    from whitebox.training.device import device_name, resolve_device
    from whitebox.training.hooks import Hooks
    from whitebox.training.interrupt import TrainingInterrupted
    from whitebox.training.loop import fit
    from whitebox.training.settings import TrainSettings

    spec = RunSpec.from_json(args.spec)
    settings = TrainSettings.from_config(spec.training, ("experiments", spec.name, "training"))
    use_threads(args.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        device = resolve_device(args.device)
    except RuntimeError as error:
        raise ConfigError(str(error)) from error
    out = Path(args.out_dir)
    data = load_prepared(Path(args.data), spec.classes)
    # Pretrained backbones expect the normalisation they were trained with.
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if spec.pretrained else mean_std(data.train)

    torch.manual_seed(args.seed)
    try:
        model = build_classifier(spec.model, len(data.classes), mean, std, image_size=data.image_size,
                                 **spec.model_args).to(device)
    except (TypeError, ValueError) as error:  # an unknown or invalid model argument
        raise ConfigError(f"config error at experiments/{spec.name}/model_args: {error}") from None
    mirror = Path(args.mirror).expanduser() if args.mirror else None
    pretrained = load_pretrained(model.net, spec.pretrained, mirror,
                                 where=f"experiments/{spec.name}/pretrained")
    try:
        hooks = Hooks(model, settings)  # checks the training options the model must fit
    except ConfigError as error:
        raise _within(spec.name, error) from None
    train_x, train_y = data.train.images.to(device), data.train.labels.to(device)
    test_x, test_y = data.test.images.to(device), data.test.labels.to(device)
    print(f"{spec.name} seed {args.seed}: {spec.model} on {spec.dataset} "
          f"({train_x.shape[0]} train / {test_x.shape[0]} test images) on {device}", file=sys.stderr)

    run_id = f"{spec.config_hash()}-seed{args.seed}"
    checkpoint = out / "checkpoint.pt"
    try:
        records, wall_time = fit(model, train_x, train_y, test_x, test_y, settings, seed=args.seed,
                                 checkpoint_path=checkpoint, run_id=run_id, hooks=hooks)
    except TrainingInterrupted as stop:  # SIGTERM/SIGINT: checkpoint written; 143/130 as if killed
        print(f"whitebox train: {stop}", file=sys.stderr)
        raise SystemExit(stop.exit_status) from None
    report = accuracy_report(predict(model, test_x, settings.eval_batch_size), test_y, data.classes)

    save_torch({"state_dict": model.state_dict(), "spec": asdict(spec), "classes": data.classes,
                "mean": mean, "std": std, "image_size": data.image_size}, out / "model.pt")
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=list(asdict(records[0])))
    writer.writeheader()
    writer.writerows(asdict(r) for r in records)
    atomic_write(out / "train_log.csv", lambda tmp: tmp.write_text(table.getvalue()))
    save_json({
        "experiment": spec.name, "dataset": spec.dataset, "seed": args.seed,
        "test_accuracy": report["accuracy"], "per_class_accuracy": report["per_class"],
        "classes": data.classes, "epochs": settings.epochs,
        "train_images": int(train_x.shape[0]), "test_images": int(test_x.shape[0]),
        "image_shape": list(data.image_shape),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "wall_time_s": round(wall_time, 3), "device": device.type, "device_name": device_name(device),
        "config_hash": spec.config_hash(), "git_commit": git_commit(), "versions": library_versions(),
        **({"pretrained": pretrained} if pretrained else {}),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **hooks.metrics_fields(int(train_x.shape[0])), "spec": asdict(spec),
    }, out / "metrics.json")
    checkpoint.unlink(missing_ok=True)
    print(f"{spec.name} seed {args.seed}: test accuracy {report['accuracy']:.2f} % "
          f"in {wall_time:.1f} s -> {out}", file=sys.stderr)
