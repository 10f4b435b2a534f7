"""``whitebox evaluate`` (the evaluation kinds of ``whitebox.evaluation.kinds``) and
``whitebox gradient-metrics`` (``whitebox.explain.metrics``) of one trained model -> JSON."""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

from whitebox.cli.common import add_threads, use_threads
from whitebox.errors import ConfigError
from whitebox.evaluation.kinds import EVALUATION_KINDS
from whitebox.schema import block, settings

GRADIENT_METRICS = ("properties", "gradient_metrics")  # config.yaml's block: the evaluation set


def configure(command: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help="prepared tensors of the model's base dataset")
    parser.add_argument("--seed", type=int, default=0)
    add_threads(parser)
    parser.add_argument("--out", required=True)
    if command == "evaluate":
        parser.add_argument("--kind", required=True, choices=list(EVALUATION_KINDS),
                            help="; ".join(f"{name}: {kind.description}"
                                           for name, kind in EVALUATION_KINDS.items()))
        parser.add_argument("--extra-data", action="append", default=[], metavar="DATASET=PATH",
                            help="prepared tensors of another base dataset the kind reads "
                                 "(ood: cifar10=data/cifar10/tensors.pt)")
        parser.set_defaults(run=run_evaluation)
        return
    parser.add_argument("--twin", default=None, help="the same model trained on shuffled labels")
    # Defaults and bounds of the evaluation set: config.yaml's gradient_metrics block (schema).
    for key, options in block(*GRADIENT_METRICS)["properties"].items():
        parser.add_argument(f"--{key.replace('_', '-')}", dest=key,
                            type=float if options.get("type") == "number" else int,
                            help=f"default {options.get('default')}")
    parser.set_defaults(run=run_gradient_metrics)


def gradient_metric_settings(given: dict) -> dict:
    """The evaluation set's settings: ``given`` checked against the schema, defaults filled."""
    return settings(GRADIENT_METRICS, given, "gradient_metrics settings")


def _provenance(kind: str, spec: dict, seed: int) -> dict:
    from whitebox.provenance import git_commit
    from whitebox.spec import RunSpec

    return {"evaluation": kind, "experiment": spec["name"], "seed": seed,
            "config_hash": RunSpec(**spec).config_hash(), "git_commit": git_commit()}


def run_evaluation(args: argparse.Namespace) -> None:
    from whitebox.evaluation.job import EvaluationJob
    from whitebox.io import save_json
    from whitebox.layers.base import growing_layers
    from whitebox.models.trained import load_trained

    kind = EVALUATION_KINDS[args.kind]
    extra = {}
    for item in args.extra_data:
        dataset, _, path = item.partition("=")
        if not (dataset and path):
            raise ConfigError(f"--extra-data expects DATASET=PATH, got '{item}'")
        extra[dataset] = Path(path)
    use_threads(args.threads)
    model, state = load_trained(Path(args.model))
    spec = state["spec"]
    if kind.inh_only and not growing_layers(model):
        raise ConfigError(f"evaluation '{args.kind}' needs an INH model; "
                          f"experiment '{spec['name']}' uses '{spec['model']}'")
    module, _, function = kind.run.partition(":")
    job = EvaluationJob(model=model, state=state, data=Path(args.data), seed=args.seed,
                        extra_data=extra)
    result = getattr(importlib.import_module(module), function)(job)
    save_json({**_provenance(args.kind, spec, args.seed), "result": result}, Path(args.out))


def run_gradient_metrics(args: argparse.Namespace) -> None:
    from whitebox.data.dataset import load_prepared
    from whitebox.explain.metrics import evaluation_set, gradient_metrics
    from whitebox.io import save_json
    from whitebox.models.trained import load_trained

    keys = block(*GRADIENT_METRICS)["properties"]
    chosen = gradient_metric_settings({key: getattr(args, key) for key in keys
                                       if getattr(args, key) is not None})
    use_threads(args.threads)
    model, state = load_trained(Path(args.model))
    spec = state["spec"]
    twin = None
    if args.twin:
        twin, twin_state = load_trained(Path(args.twin))
        if twin_state["classes"] != state["classes"] or twin_state["spec"]["model"] != spec["model"]:
            raise ConfigError(f"{args.twin} is not the same model on the same classes as "
                              f"{args.model}; a random-label twin must be")
    data = load_prepared(Path(args.data), spec["classes"])
    images, labels, noise = evaluation_set(
        data.test.images, data.test.labels, n_images=chosen["n_images"], n_noise=chosen["n_noise"],
        noise_std=chosen["noise_std"], noise_seed=chosen["noise_seed"])
    start = time.perf_counter()
    result = gradient_metrics(model, images, labels, noise, max_classes=chosen["max_classes"],
                              cascade_steps=chosen["cascade_steps"],
                              curve_steps=chosen["curve_steps"], twin=twin, seed=args.seed)
    save_json({**_provenance("gradient_metrics", spec, args.seed), "settings": chosen,
               "twin": args.twin, "wall_time_s": round(time.perf_counter() - start, 3),
               "result": result}, Path(args.out))
