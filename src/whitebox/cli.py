"""The commands the Snakemake rules call; the only place that reads config and paths.

Every rule runs one of these with explicit paths, so anything the DAG does can be
rerun by hand: ``python -m whitebox <command> --help``.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from dataclasses import asdict
from pathlib import Path

from whitebox.config import ConfigError, ExperimentSpec


def _prepare_data(args: argparse.Namespace) -> None:
    import json

    from whitebox.data import prepare_dataset

    prepare_dataset(args.dataset, json.loads(args.source), root=Path(args.root), out=Path(args.out),
                    mirror=Path(args.mirror) if args.mirror else None)


def _train(args: argparse.Namespace) -> None:
    import torch

    from whitebox.data import load_prepared, mean_std
    from whitebox.evaluation import accuracy_report, predict
    from whitebox.io import atomic_write, save_json, save_torch
    from whitebox.models import build_classifier, model_names
    from whitebox.provenance import git_commit, library_versions
    from whitebox.training import TrainSettings, fit, resolve_device
    from whitebox.training.device import device_name

    spec = ExperimentSpec.from_json(args.spec)
    if spec.model not in model_names():
        raise ConfigError(f"unknown model '{spec.model}'; valid: {', '.join(model_names())}")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    device = resolve_device(args.device)
    out = Path(args.out_dir)
    data = load_prepared(Path(args.data), spec.classes)
    mean, std = mean_std(data.train)

    torch.manual_seed(args.seed)
    model = build_classifier(spec.model, len(data.classes), mean, std, image_size=data.image_size,
                             **spec.model_args).to(device)
    settings = TrainSettings(**spec.training)
    train_x, train_y = data.train.images.to(device), data.train.labels.to(device)
    test_x, test_y = data.test.images.to(device), data.test.labels.to(device)
    print(f"{spec.name} seed {args.seed}: {spec.model} on {spec.dataset} "
          f"({train_x.shape[0]} train / {test_x.shape[0]} test images) on {device}", file=sys.stderr)

    run_id = f"{spec.config_hash()}-seed{args.seed}"
    checkpoint = out / "checkpoint.pt"
    records, wall_time = fit(model, train_x, train_y, test_x, test_y, settings, seed=args.seed,
                             checkpoint_path=checkpoint, run_id=run_id)
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
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "wall_time_s": round(wall_time, 3), "device": device.type, "device_name": device_name(device),
        "config_hash": spec.config_hash(), "git_commit": git_commit(), "versions": library_versions(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "spec": asdict(spec),
    }, out / "metrics.json")
    checkpoint.unlink(missing_ok=True)
    print(f"{spec.name} seed {args.seed}: test accuracy {report['accuracy']:.2f} % "
          f"in {wall_time:.1f} s -> {out}", file=sys.stderr)


def _load_trained(model_path: Path):
    """The trained classifier in ``model_path`` and the dict saved with it."""
    import torch

    from whitebox.models import classifier_from_checkpoint

    state = torch.load(model_path, map_location="cpu", weights_only=False)
    return classifier_from_checkpoint(state), state


def _gradients(args: argparse.Namespace) -> None:
    from whitebox.data import load_prepared
    from whitebox.explain import class_gradients, to_display
    from whitebox.figures import save_gradient_figure

    model, state = _load_trained(Path(args.model))
    data = load_prepared(Path(args.data), state["spec"]["classes"])
    images = data.test.images[:args.n_images].float() / 255
    gradients = to_display(class_gradients(model, images))
    save_gradient_figure(images, gradients, state["classes"], Path(args.out))


def _filters(args: argparse.Namespace) -> None:
    from whitebox.figures import save_filter_grid

    model, state = _load_trained(Path(args.model))
    try:
        layer = model.net.get_submodule(args.layer)
    except AttributeError:
        names = [name for name, m in model.net.named_modules() if hasattr(m, "weight") and name]
        raise ConfigError(f"model has no layer '{args.layer}'; layers with weights: "
                          f"{', '.join(names)}") from None
    save_filter_grid(layer.weight, Path(args.out), group_size=args.group_size,
                     title=f"{state['spec']['title']}: {args.layer} filters")


def _paper(args: argparse.Namespace) -> None:
    from whitebox.paper import build_context, render_paper

    figures: dict[str, dict[str, Path]] = {}
    for item in args.figure:
        key, _, path = item.partition("=")
        experiment, _, kind = key.partition(":")
        if not (experiment and kind and path):
            raise ConfigError(f"--figure expects EXPERIMENT:KIND=PATH, got '{item}'")
        figures.setdefault(experiment, {})[kind] = Path(path)
    context = build_context([Path(p) for p in args.metrics], figures, Path(args.paper_dir))
    render_paper(Path(args.templates), Path(args.out), context)


def build_parser() -> argparse.ArgumentParser:
    """The ``whitebox`` command line."""
    parser = argparse.ArgumentParser(prog="whitebox", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("prepare-data", help="download/verify a base dataset, save tensors")
    p.add_argument("--dataset", required=True, help="base dataset name, e.g. cifar10")
    p.add_argument("--source", required=True, help="the dataset's config entry as JSON")
    p.add_argument("--root", required=True, help="torchvision root for the raw files")
    p.add_argument("--out", required=True, help="tensors file to write")
    p.add_argument("--mirror", default=None, help="local mirror used instead of the network")
    p.set_defaults(run=_prepare_data)

    p = commands.add_parser("train", help="train one experiment for one seed")
    p.add_argument("--spec", required=True, help="resolved experiment spec as JSON")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--data", required=True, help="prepared tensors of the base dataset")
    p.add_argument("--out-dir", required=True, help="results/<dataset>/<experiment>/seed<N>")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.set_defaults(run=_train)

    p = commands.add_parser("gradients", help="grid of test images and class-logit gradients")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--n-images", type=int, default=60)
    p.add_argument("--out", required=True)
    p.set_defaults(run=_gradients)

    p = commands.add_parser("filters", help="grid of a convolution's filters")
    p.add_argument("--model", required=True)
    p.add_argument("--layer", default="conv1")
    p.add_argument("--group-size", type=int, default=1)
    p.add_argument("--out", required=True)
    p.set_defaults(run=_filters)

    p = commands.add_parser("paper", help="render paper templates from result files")
    p.add_argument("--metrics", nargs="+", required=True)
    p.add_argument("--figure", action="append", default=[], help="EXPERIMENT:KIND=PATH")
    p.add_argument("--templates", default="paper/templates")
    p.add_argument("--out", default="paper/generated")
    p.add_argument("--paper-dir", default="paper", help="figure paths are made relative to it")
    p.set_defaults(run=_paper)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; user errors end with one line on stderr and exit status 1."""
    args = build_parser().parse_args(argv)
    from whitebox.data import DataError
    from whitebox.training import TrainingDiverged

    try:
        args.run(args)
    except (ConfigError, DataError, TrainingDiverged) as error:
        print(f"whitebox {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0
