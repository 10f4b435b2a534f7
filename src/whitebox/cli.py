"""The commands the Snakemake rules call; the only place that reads config and paths.

Every rule runs one of these with explicit paths, so anything the DAG does can be
rerun by hand: ``python -m whitebox <command> --help``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from whitebox.config import ConfigError, ExperimentSpec, gradient_metric_settings


def _prepare_data(args: argparse.Namespace) -> None:
    from whitebox.data import prepare_dataset

    prepare_dataset(args.dataset, json.loads(args.source), root=Path(args.root), out=Path(args.out),
                    mirror=Path(args.mirror) if args.mirror else None, workers=args.workers)


def _train(args: argparse.Namespace) -> None:
    import torch

    from whitebox.data import load_prepared, mean_std
    from whitebox.data.weights import IMAGENET_MEAN, IMAGENET_STD
    from whitebox.evaluation import accuracy_report, predict
    from whitebox.io import atomic_write, save_json, save_torch
    from whitebox.layers import GumbelConv2d
    from whitebox.layers.base import growing_layers
    from whitebox.models import build_classifier
    from whitebox.provenance import git_commit, library_versions
    from whitebox.training import TrainingInterrupted, TrainSettings, fit, resolve_device
    from whitebox.training.device import device_name
    from whitebox.training.invariance import representation_pool

    spec = ExperimentSpec.from_json(args.spec)
    if args.threads:
        torch.set_num_threads(args.threads)
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
    settings = TrainSettings(**spec.training)
    try:
        model = build_classifier(spec.model, len(data.classes), mean, std, image_size=data.image_size,
                                 **spec.model_args).to(device)
    except (TypeError, ValueError) as error:  # an unknown or invalid model argument
        raise ConfigError(f"config error at experiments/{spec.name}/model_args: {error}") from None
    pretrained = _load_pretrained(model.net, spec, Path(args.mirror) if args.mirror else None)
    if settings.invariance:
        try:
            representation_pool(model)
        except ValueError as error:
            raise ConfigError(f"config error at experiments/{spec.name}/training/invariance: "
                              f"{error}") from None
    train_x, train_y = data.train.images.to(device), data.train.labels.to(device)
    test_x, test_y = data.test.images.to(device), data.test.labels.to(device)
    print(f"{spec.name} seed {args.seed}: {spec.model} on {spec.dataset} "
          f"({train_x.shape[0]} train / {test_x.shape[0]} test images) on {device}", file=sys.stderr)

    run_id = f"{spec.config_hash()}-seed{args.seed}"
    checkpoint = out / "checkpoint.pt"
    try:
        records, wall_time = fit(model, train_x, train_y, test_x, test_y, settings, seed=args.seed,
                                 checkpoint_path=checkpoint, run_id=run_id)
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
    n_slots = sum(layer.n_units() for layer in growing_layers(model))  # INH: slots kept
    slots = {"slots": n_slots, "compression": round(train_x.shape[0] / n_slots, 2)} if n_slots else {}
    gumbel = {name: layer.parameter_count_vs_conv2d() for name, layer in model.named_modules()
              if isinstance(layer, GumbelConv2d)}
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
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **slots,
        **({"gumbel_layers": gumbel} if gumbel else {}), "spec": asdict(spec),
    }, out / "metrics.json")
    checkpoint.unlink(missing_ok=True)
    print(f"{spec.name} seed {args.seed}: test accuracy {report['accuracy']:.2f} % "
          f"in {wall_time:.1f} s -> {out}", file=sys.stderr)


def _load_pretrained(net, spec: ExperimentSpec, mirror: Path | None) -> dict | None:
    """Load the spec's pretrained weights into ``net.backbone``; what was loaded, for metrics.json.

    Weights that cannot be found stop the run (one line), unless the entry's fallback is
    ``scratch``: then the backbone keeps its random initialisation and a warning says so.
    """
    if spec.pretrained is None:
        return None
    from whitebox.data.weights import WeightsUnavailable, fetch_weights, load_state_dict_file
    from whitebox.models.backbones import backbone_state_dict

    entry = spec.pretrained
    where = f"experiments/{spec.name}/pretrained"
    backbone = getattr(net, "backbone", None)
    if backbone is None:
        raise ConfigError(f"config error at {where}: model '{spec.model}' has no backbone to "
                          "load pretrained weights into")
    try:
        path = fetch_weights(entry["url"], entry["file"], mirror,
                             check_hash=entry.get("check_hash", True))
    except WeightsUnavailable as error:
        if entry.get("fallback", "error") != "scratch":
            raise
        print(f"warning: {error}; {spec.name} trains its backbone from scratch", file=sys.stderr)
        return {"name": entry["name"], "file": entry["file"], "loaded": False}
    try:
        state = backbone_state_dict(backbone, load_state_dict_file(path))
    except ValueError as error:
        raise ConfigError(f"config error at {where}: {path} does not fit the backbone "
                          f"({error})") from None
    backbone.load_state_dict(state)
    return {"name": entry["name"], "file": entry["file"], "loaded": True}


def _load_trained(model_path: Path):
    """The trained classifier in ``model_path`` and the dict saved with it."""
    import torch

    if not model_path.is_file():
        raise ConfigError(f"no trained model at {model_path}; train it first "
                          f"(snakemake {model_path})")

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


def _layer(model, name: str):
    """Submodule ``name`` of ``model``; an unknown name lists the layers that have weights."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        names = [n for n, m in model.named_modules() if hasattr(m, "weight") and n]
        raise ConfigError(f"model has no layer '{name}'; layers with weights: "
                          f"{', '.join(names)}") from None


def _filters(args: argparse.Namespace) -> None:
    from whitebox.figures import save_filter_grid

    model, state = _load_trained(Path(args.model))
    layer = _layer(model.net, args.layer)
    save_filter_grid(layer.weight, Path(args.out), group_size=args.group_size,
                     title=f"{state['spec']['title']}: {args.layer} filters")


ATTACKED_IMAGES = 2000  # PGD on the first 2000 test images: 40 steps x 3 eps stay minutes on a CPU


def _evaluate(args: argparse.Namespace) -> None:
    import torch

    from whitebox import evaluation
    from whitebox.data import load_prepared
    from whitebox.io import save_json
    from whitebox.layers.base import growing_layers
    from whitebox.provenance import git_commit

    if args.threads:
        torch.set_num_threads(args.threads)
    model, state = _load_trained(Path(args.model))
    spec = state["spec"]
    data = load_prepared(Path(args.data), spec["classes"])
    images, labels = data.test.images, data.test.labels
    is_inh = bool(growing_layers(model))
    if args.kind != "attacks" and not is_inh:
        raise ConfigError(f"evaluation '{args.kind}' needs an INH model; "
                          f"experiment '{spec['name']}' uses '{spec['model']}'")
    if args.kind == "slot_update":
        result = {reference: evaluation.continual_slot_update(model, images, labels, seed=args.seed,
                                                              reference=reference)
                  for reference in ("revealed", "revealed+predicted")}
    elif args.kind == "ood":
        if not args.ood_data:
            raise ConfigError("evaluation 'ood' needs --ood-data (prepared CIFAR-10 tensors)")
        shape = tuple(images.shape[1:])
        cifar = load_prepared(Path(args.ood_data)).test.images
        out_sets = {"gaussian_noise": evaluation.gaussian_noise(len(images), shape, seed=args.seed),
                    "uniform_noise": evaluation.uniform_noise(len(images), shape, seed=args.seed),
                    "cifar10_grey_crops": evaluation.grey_crops(cifar, size=shape[-1], seed=args.seed)}
        result = evaluation.ood_report(model, images, out_sets)
    elif args.kind == "class_incremental":
        everything = load_prepared(Path(args.data))
        unseen = [name for name in everything.classes if name not in data.classes]
        if not unseen:
            raise ConfigError(f"experiment '{spec['name']}' trains on every class of its dataset; "
                              "class_incremental needs a subset dataset")
        result = evaluation.class_incremental_report(
            model, images, everything.subset(unseen).test.images, seen_labels=labels)
        result["seen_classes"], result["unseen_classes"] = data.classes, unseen
    else:
        result = evaluation.robustness_report(
            model, images[:ATTACKED_IMAGES], labels[:ATTACKED_IMAGES], seed=args.seed,
            flag_fn=evaluation.inh_flags(model) if is_inh else None)
        result["n_images"] = min(ATTACKED_IMAGES, len(images))
    save_json({"evaluation": args.kind, "experiment": spec["name"], "seed": args.seed,
               "config_hash": ExperimentSpec(**spec).config_hash(), "git_commit": git_commit(),
               "result": result}, Path(args.out))


# The options of gradient-metrics that set its evaluation set (config.yaml gradient_metrics).
GRADIENT_METRIC_KEYS = ("n_images", "n_noise", "noise_std", "noise_seed", "max_classes",
                        "cascade_steps")


def _gradient_metrics(args: argparse.Namespace) -> None:
    import torch

    from whitebox.data import load_prepared
    from whitebox.explain.metrics import evaluation_set, gradient_metrics
    from whitebox.io import save_json
    from whitebox.provenance import git_commit

    settings = gradient_metric_settings({key: getattr(args, key) for key in GRADIENT_METRIC_KEYS
                                         if getattr(args, key) is not None})
    if args.threads:
        torch.set_num_threads(args.threads)
    model, state = _load_trained(Path(args.model))
    spec = state["spec"]
    twin = None
    if args.twin:
        twin, twin_state = _load_trained(Path(args.twin))
        if twin_state["classes"] != state["classes"] or twin_state["spec"]["model"] != spec["model"]:
            raise ConfigError(f"{args.twin} is not the same model on the same classes as "
                              f"{args.model}; a random-label twin must be")
    data = load_prepared(Path(args.data), spec["classes"])
    images, labels, noise = evaluation_set(
        data.test.images, data.test.labels, n_images=settings["n_images"],
        n_noise=settings["n_noise"], noise_std=settings["noise_std"],
        noise_seed=settings["noise_seed"])
    start = time.perf_counter()
    result = gradient_metrics(model, images, labels, noise, max_classes=settings["max_classes"],
                              cascade_steps=settings["cascade_steps"], twin=twin, seed=args.seed)
    save_json({"evaluation": "gradient_metrics", "experiment": spec["name"], "seed": args.seed,
               "config_hash": ExperimentSpec(**spec).config_hash(), "git_commit": git_commit(),
               "settings": settings, "twin": args.twin,
               "wall_time_s": round(time.perf_counter() - start, 3), "result": result},
              Path(args.out))


def _slots(args: argparse.Namespace) -> None:
    from whitebox.figures import save_slot_figure
    from whitebox.layers.base import growing_layers

    model, state = _load_trained(Path(args.model))
    layers = growing_layers(model)
    if not layers:
        raise ConfigError("the slots figure needs an INH model (model: inh)")
    layer = layers[0]
    shape = (len(state["mean"]), state["image_size"], state["image_size"])
    save_slot_figure(layer.weight.detach(), layer.slot_labels, state["classes"], shape, Path(args.out),
                     max_per_class=args.max_per_class)


def _slot_update_curve(args: argparse.Namespace) -> None:
    from whitebox.figures import save_slot_update_curve

    result = json.loads(Path(args.evaluation).read_text())["result"][args.protocol]
    save_slot_update_curve(result["curve"], Path(args.out))


def _noise_gradients(args: argparse.Namespace) -> None:
    import torch

    from whitebox.explain import unit_gradients_on_noise
    from whitebox.figures import save_noise_gradient_figure

    if len(args.layer) != len(args.units):
        raise ConfigError("give one --units list after each --layer")
    model, state = _load_trained(Path(args.model))
    shape = (len(state["mean"]), state["image_size"], state["image_size"])
    gradients, labels = [], []
    for layer, units in zip(args.layer, args.units, strict=True):
        _layer(model, layer)
        try:
            gradients.append(unit_gradients_on_noise(model, layer, units, args.n_samples, shape))
        except IndexError as error:
            raise ConfigError(str(error)) from None
        labels += [f"{layer} unit {u}" for u in units]
    save_noise_gradient_figure(torch.cat(gradients), labels, Path(args.out),
                               title=f"{state['spec']['title']}: gradients on Gaussian noise")


def _unit_grid(args: argparse.Namespace) -> None:
    from whitebox.explain import all_unit_gradients_on_noise, count_units
    from whitebox.figures import UnitGridRow, save_unit_grid_figure, unit_class_blocks

    if args.compare_layer and not args.compare_model:
        raise ConfigError("--compare-layer needs --compare-model")
    models = [(Path(args.model), args.layer)]
    if args.compare_model:
        models.append((Path(args.compare_model), args.compare_layer or args.layer))
    rows, described, first_shape = [], [], None
    for path, layer_name in models:
        model, state = _load_trained(path)
        _layer(model, layer_name)
        shape = (len(state["mean"]), state["image_size"], state["image_size"])
        if first_shape is not None and shape != first_shape:
            raise ConfigError(f"{path} takes {shape} images but {models[0][0]} takes {first_shape}; "
                              "compare models trained on the same dataset")
        first_shape = shape
        classes = list(state["classes"])
        try:
            n_units = count_units(model, layer_name, shape)
            unit_class_blocks(n_units, len(classes))
        except ValueError as error:
            raise ConfigError(f"layer '{layer_name}' of {path}: {error}") from None
        gradients = all_unit_gradients_on_noise(model, layer_name, shape, seed=args.noise_seed)
        title = state["spec"]["title"] or state["spec"]["name"]
        rows.append(UnitGridRow(title, gradients, classes))
        described.append({"experiment": state["spec"]["name"], "title": title, "layer": layer_name,
                          "n_units": n_units, "units_per_class": n_units // len(classes),
                          "classes": classes})
    save_unit_grid_figure(rows, Path(args.out), info={"noise_seed": args.noise_seed, "rows": described},
                          title=f"gradients of every unit on one Gaussian-noise image "
                                f"(noise seed {args.noise_seed})")


KERNEL_VIEW_LAYERS = "ScaleConv2d, PerspectiveConv2d, ProjectiveConv2d"


def _kernel_views(args: argparse.Namespace) -> None:
    import torch

    from whitebox.figures import save_kernel_views_figure

    model, state = _load_trained(Path(args.model))
    layer = _layer(model, args.layer)
    kind = type(layer).__name__
    if not (callable(getattr(layer, "kernel_views", None)) and callable(getattr(layer, "view_labels", None))):
        raise ConfigError(f"layer '{args.layer}' is {kind}, which has no kernel_views()/view_labels(); "
                          f"the kernel_views figure needs a layer with views of its kernel "
                          f"({KERNEL_VIEW_LAYERS})")
    with torch.no_grad():
        views = layer.kernel_views().detach()
    labels = [str(label) for label in layer.view_labels()]
    perspective = getattr(layer, "perspective", None)
    perspective = perspective.detach() if isinstance(perspective, torch.Tensor) else None
    try:
        save_kernel_views_figure(
            views, labels, Path(args.out), n_kernels=args.n_kernels, perspective=perspective,
            title=f"{state['spec']['title']}: {args.layer} ({kind}) kernels under {len(labels)} views",
            info={"layer": args.layer, "layer_type": kind, "out_channels": int(views.shape[1]),
                  "in_channels": int(views.shape[2])})
    except ValueError as error:
        raise ConfigError(f"layer '{args.layer}' ({kind}): {error}") from None


def _prototype_parts(args: argparse.Namespace) -> None:
    from whitebox.data import load_prepared
    from whitebox.explain.prototypes import prototype_part_matches, push_patch_distances
    from whitebox.figures.prototypes import save_prototype_parts
    from whitebox.layers.prototypes import PartPrototypes

    if args.n_images < 1 or args.n_prototypes < 1:
        raise ConfigError(f"--n-images and --n-prototypes must be >= 1, got {args.n_images} "
                          f"and {args.n_prototypes}")
    model, state = _load_trained(Path(args.model))
    spec = state["spec"]
    if not any(isinstance(module, PartPrototypes) for module in model.modules()):
        raise ConfigError(f"the prototype_parts figure needs a prototype network (model: "
                          f"prototype_network); experiment '{spec['name']}' uses "
                          f"'{spec.get('model', type(model).__name__)}'")
    # The training split in its stored order: push_source indexes it as training did.
    data = load_prepared(Path(args.data), spec.get("classes"))
    images = data.test.images[:args.n_images].float() / 255
    try:
        matches = prototype_part_matches(model, images, args.n_prototypes)
    except ValueError as error:
        raise ConfigError(f"experiment '{spec['name']}': {error}") from None
    if matches.pushed.any() and int(matches.push_source[..., 0].max()) >= len(data.train):
        raise ConfigError(f"{args.model} was pushed to training image "
                          f"{int(matches.push_source[..., 0].max())} but {args.data} has "
                          f"{len(data.train)} training images; pass the dataset the model was trained on")
    save_prototype_parts(images, data.test.labels[:args.n_images].tolist(), matches,
                         list(state["classes"]), Path(args.out), train_images=data.train.images,
                         title=f"{spec.get('title') or spec['name']}: prototype parts",
                         info={"experiment": spec["name"], "requested_prototypes": args.n_prototypes},
                         push_distances=push_patch_distances(model, data.train.images, matches))


def _paper(args: argparse.Namespace) -> None:
    from whitebox.paper import build_context, render_paper

    figures: dict[str, dict[str, Path]] = {}
    for item in args.figure:
        key, _, path = item.partition("=")
        experiment, _, kind = key.partition(":")
        if not (experiment and kind and path):
            raise ConfigError(f"--figure expects EXPERIMENT:KIND=PATH, got '{item}'")
        figures.setdefault(experiment, {})[kind] = Path(path)
    context = build_context([Path(p) for p in args.metrics], figures, Path(args.paper_dir),
                            claims=_claims_option(args.claims))
    render_paper(Path(args.templates), Path(args.out), context)


def _summary(args: argparse.Namespace) -> None:
    from whitebox.paper import build_context
    from whitebox.paper.summary import claim_rows, experiment_rows, write_csv

    context = build_context([Path(p) for p in args.metrics], {}, Path(args.out_experiments).parent,
                            claims=_claims_option(args.claims))
    write_csv(experiment_rows(context), Path(args.out_experiments))
    write_csv(claim_rows(context), Path(args.out_claims))


def _claims_option(text: str | None) -> dict | None:
    """The --claims option: config.yaml's claims block as JSON."""
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError as error:
        raise ConfigError(f"--claims is not valid JSON: {error}") from None


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
    p.add_argument("--workers", type=int, default=1, help="processes decoding images (CUB)")
    p.set_defaults(run=_prepare_data)

    p = commands.add_parser("train", help="train one experiment for one seed")
    p.add_argument("--spec", required=True, help="resolved experiment spec as JSON")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--data", required=True, help="prepared tensors of the base dataset")
    p.add_argument("--out-dir", required=True, help="results/<dataset>/<experiment>/seed<N>")
    p.add_argument("--device", default="auto",
                   help="auto (a free GPU, else CPU), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--mirror", default=None, help="data_mirror: pretrained weights are read there")
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

    p = commands.add_parser("evaluate", help="an extra evaluation of a trained model -> JSON")
    p.add_argument("--kind", required=True, choices=["slot_update", "ood", "attacks", "class_incremental"])
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="prepared tensors of the model's base dataset")
    p.add_argument("--ood-data", default=None, help="prepared CIFAR-10 tensors (for --kind ood)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(run=_evaluate)

    p = commands.add_parser("gradient-metrics",
                            help="alignment, specificity, noise stability, sanity checks -> JSON")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="prepared tensors of the model's base dataset")
    p.add_argument("--twin", default=None, help="the same model trained on shuffled labels")
    p.add_argument("--seed", type=int, default=0, help="seeds the layer re-initialisation")
    # Defaults and bounds of the evaluation set: config.yaml's gradient_metrics block (schema).
    p.add_argument("--n-images", type=int, help="first test images used")
    p.add_argument("--n-noise", type=int, help="Gaussian-noise images")
    p.add_argument("--noise-std", type=float)
    p.add_argument("--noise-seed", type=int)
    p.add_argument("--max-classes", type=int, help="first class logits used")
    p.add_argument("--cascade-steps", type=int, help="blocks of layers randomised")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(run=_gradient_metrics)

    p = commands.add_parser("slots", help="INH slots as images, grouped by class")
    p.add_argument("--model", required=True)
    p.add_argument("--max-per-class", type=int, default=12)
    p.add_argument("--out", required=True)
    p.set_defaults(run=_slots)

    p = commands.add_parser("slot-update-curve", help="accuracy vs new slots of a slot update")
    p.add_argument("--evaluation", required=True, help="slot_update.json")
    p.add_argument("--protocol", default="revealed+predicted", choices=["revealed", "revealed+predicted"])
    p.add_argument("--out", required=True)
    p.set_defaults(run=_slot_update_curve)

    p = commands.add_parser("noise-gradients", help="gradients of a layer's units on Gaussian noise")
    p.add_argument("--model", required=True)
    p.add_argument("--layer", action="append", required=True,
                   help="submodule name, e.g. net.conv2 or net.inh; repeat for more layers")
    p.add_argument("--units", type=int, nargs="+", action="append", required=True,
                   help="unit indices of the --layer before it")
    p.add_argument("--n-samples", type=int, default=6)
    p.add_argument("--out", required=True)
    p.set_defaults(run=_noise_gradients)

    p = commands.add_parser("unit-grid", help="gradients of every unit of a layer on one noise image")
    p.add_argument("--model", required=True)
    p.add_argument("--layer", required=True,
                   help="submodule whose units are split into per-class blocks, e.g. net.augmax")
    p.add_argument("--compare-model", default=None, help="a second model, drawn the same way below")
    p.add_argument("--compare-layer", default=None, help="its layer (default: --layer)")
    p.add_argument("--noise-seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(run=_unit_grid)

    p = commands.add_parser("kernel-views", help="a layer's largest kernels under each of its views")
    p.add_argument("--model", required=True)
    p.add_argument("--layer", required=True, help="a layer with kernel_views(), e.g. net.conv2")
    p.add_argument("--n-kernels", type=int, default=6)
    p.add_argument("--out", required=True)
    p.set_defaults(run=_kernel_views)

    p = commands.add_parser("prototype-parts",
                            help="where a prototype network's parts match, and their training patches")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="prepared tensors of the model's base dataset")
    p.add_argument("--n-images", type=int, default=4)
    p.add_argument("--n-prototypes", type=int, default=3,
                   help="top-scoring prototypes of the predicted class per image")
    p.add_argument("--out", required=True)
    p.set_defaults(run=_prototype_parts)

    p = commands.add_parser("paper", help="render paper templates from result files")
    p.add_argument("--metrics", nargs="+", required=True)
    p.add_argument("--figure", action="append", default=[], help="EXPERIMENT:KIND=PATH")
    p.add_argument("--templates", default="paper/templates")
    p.add_argument("--out", default="paper/generated")
    p.add_argument("--paper-dir", default="paper", help="figure paths are made relative to it")
    p.add_argument("--claims", default=None,
                   help="config.yaml's claims block as JSON (items, margins) for the claims table")
    p.set_defaults(run=_paper)

    p = commands.add_parser("summary", help="experiments and claims tables as CSV files")
    p.add_argument("--metrics", nargs="+", required=True)
    p.add_argument("--claims", default=None, help="config.yaml's claims block as JSON")
    p.add_argument("--out-experiments", required=True, help="CSV: accuracy and gradient metrics")
    p.add_argument("--out-claims", required=True, help="CSV: claims with evidence and verdicts")
    p.set_defaults(run=_summary)
    return parser


def _storage_error(error: OSError) -> str | None:
    """One line for a full disk, exceeded quota or unwritable directory (naming the path), else
    None: other OSErrors are not the user's storage and keep their traceback."""
    import errno

    path = error.filename if error.filename is not None else "an output file"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = "no space left on device" if error.errno == errno.ENOSPC else "disk quota exceeded"
        return f"cannot write {path}: {reason}; free some space or write elsewhere, then rerun"
    if error.errno == errno.EROFS:
        return (f"cannot write {path}: read-only file system, the directory is not writable; "
                "make it writable or write elsewhere")
    if error.errno in (errno.EACCES, errno.EPERM):
        return f"cannot access {path}: permission denied; check the permissions of it and its directory"
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one command; user errors (also a full disk or an unwritable directory) end with one
    line on stderr and exit status 1."""
    args = build_parser().parse_args(argv)
    from whitebox.data import DataError
    from whitebox.paper import PaperInputError
    from whitebox.training import TrainingDiverged

    try:
        args.run(args)
    except (ConfigError, DataError, PaperInputError, TrainingDiverged) as error:
        print(f"whitebox {args.command}: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        message = _storage_error(error)
        if message is None:
            raise
        print(f"whitebox {args.command}: error: {message}", file=sys.stderr)
        return 1
    return 0
