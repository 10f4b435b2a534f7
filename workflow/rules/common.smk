# Helpers shared by all rules (specs of experiments and the paths they imply).

import json
import re
import shlex

from whitebox.config import experiment_spec

WHITEBOX_SRC = Path(workflow.basedir) / "src" / "whitebox"
# Modules every command may import (the CLI, config, file helpers, provenance).
CORE_SOURCES = ["__init__.py", "__main__.py", "cli.py", "config.py", "io.py", "provenance.py"]


# Figure file names end in _<kind>.png, so a figure rule must match an experiment's exact
# name ("inh_mnist_noise_gradients.png" is inh_mnist's noise_gradients, not a gradients figure).
EXPERIMENT_NAMES = "|".join(re.escape(name) for name in config["experiments"])


def library_sources(*rooms):
    """Source files of the library rooms a rule runs, so editing them reruns the rule."""
    files = [WHITEBOX_SRC / name for name in CORE_SOURCES]
    for room in rooms:
        files.extend(sorted((WHITEBOX_SRC / room).rglob("*.py")))
    return [str(path) for path in files]


def spec(experiment):
    return experiment_spec(config, experiment)


def run_dir(experiment, seed):
    return f"results/{spec(experiment).dataset}/{experiment}/seed{seed}"


def all_metrics():
    return [
        f"{run_dir(name, seed)}/metrics.json"
        for name in config["experiments"]
        for seed in config["seeds"]
    ]


def all_evaluations():
    """Every evaluation JSON the config asks for (each experiment x seed x evaluation)."""
    return [
        f"{run_dir(name, seed)}/{evaluation}.json"
        for name, entry in config["experiments"].items()
        for seed in config["seeds"]
        for evaluation in entry["evaluations"]
    ]


def figure_paths():
    """{experiment: {kind: png}} for every figure the config asks for."""
    return {
        name: {
            kind: f"results/{spec(name).dataset}/{name}_{kind}.png"
            for kind in entry["figures"]
        }
        for name, entry in config["experiments"].items()
    }


def figure_args(paths):
    return " ".join(
        f"--figure {name}:{kind}={png}"
        for name, kinds in paths.items()
        for kind, png in kinds.items()
    )


def prepared_data(wildcards):
    """The prepared tensors of the experiment's base dataset (checks the path's dataset)."""
    experiment = spec(wildcards.experiment)
    if experiment.dataset != wildcards.dataset:
        raise ValueError(
            f"experiment '{wildcards.experiment}' uses dataset '{experiment.dataset}', "
            f"not '{wildcards.dataset}'"
        )
    return f"data/{experiment.base_dataset}/tensors.pt"


def ood_images(wildcards):
    """Out-of-distribution evaluation also shows the model greyscale crops of CIFAR-10."""
    return "data/cifar10/tensors.pt" if wildcards.evaluation == "ood" else []


def mirror_option(wildcards):
    """``--mirror DIR`` when config sets data_mirror, else nothing."""
    mirror = config["data_mirror"]
    return f"--mirror {shlex.quote(str(Path(mirror).expanduser().resolve()))}" if mirror else ""


def first_seed_model(wildcards):
    return f"{run_dir(wildcards.experiment, config['seeds'][0])}/model.pt"


def figure_option(wildcards, kind, key):
    return config["experiments"][wildcards.experiment]["figures"][kind][key]


PAPER_TEMPLATES = sorted(Path(workflow.basedir, "paper", "templates").glob("*.tex.j2"))
GENERATED = [f"paper/generated/{t.name.removesuffix('.j2')}" for t in PAPER_TEMPLATES]


def all_figures():
    return [png for kinds in figure_paths().values() for png in kinds.values()]
