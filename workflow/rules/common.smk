# Helpers shared by all rules (specs of experiments and the paths they imply).

import json
import re
import shlex

from whitebox.config import (
    experiment_spec,
    figure_files,
    gpu_request,
    gradient_metric_options,
    job_resources,
    noise_gradient_rows,
)

WHITEBOX_SRC = Path(workflow.basedir) / "src" / "whitebox"
# Modules every command may import (the CLI, config, file helpers, provenance).
CORE_SOURCES = ["__init__.py", "__main__.py", "cli.py", "config.py", "io.py", "provenance.py"]


# Every figure config asks for: {"results/<dataset>/<file>.png": (experiment, kind)}.
FIGURES = figure_files(config)


def library_sources(*rooms):
    """Source files of the library rooms a rule runs, so editing them reruns the rule."""
    files = [WHITEBOX_SRC / name for name in CORE_SOURCES]
    for room in rooms:
        files.extend(sorted((WHITEBOX_SRC / room).rglob("*.py")))
    return [str(path) for path in files]


def spec(experiment):
    return experiment_spec(config, experiment)


def resources_of(group):
    """mem_mb and runtime of one group of jobs (config.yaml: cluster.resources)."""
    return job_resources(config, group)


def training_resources():
    """Per-experiment resources of training jobs, as callables: mem_mb, runtime, and the GPU
    request of experiments marked gpu (gpu, gpu_model, gres; see config.gpu_request); and, for
    SLURM, SIGTERM before the time limit (slurm_extra), which only the job's steps receive
    (srun itself would kill the step at once on a signal of its own)."""
    stop = config["cluster"]["stop_before_limit_s"]

    def request(wildcards):
        return {
            **job_resources(config, "train", wildcards.experiment),
            **gpu_request(config, wildcards.experiment),
        }

    keys = ("mem_mb", "runtime", "gpu", "gpu_model", "gres")
    resources = {key: (lambda wildcards, key=key: request(wildcards)[key]) for key in keys}
    return {**resources, "slurm_extra": f"--signal=TERM@{stop}" if stop else ""}


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


def all_gradient_metrics():
    """The gradient_metrics.json of every run (each experiment x seed)."""
    return [
        f"{run_dir(name, seed)}/gradient_metrics.json"
        for name in config["experiments"]
        for seed in config["seeds"]
    ]


def random_label_twin_model(wildcards):
    """The same seed's model of the experiment's random_label_twin (or none)."""
    twin = config["experiments"][wildcards.experiment].get("random_label_twin")
    return [f"{run_dir(twin, wildcards.seed)}/model.pt"] if twin else []


def gradient_metric_args():
    """``--n-images N ...``: the gradient_metrics block of config.yaml as options."""
    return shlex.join(gradient_metric_options(config["gradient_metrics"]))


def claims_json():
    """The claims block of config.yaml (items and margins) as one JSON string."""
    return json.dumps(config["claims"], sort_keys=True)


def figure_paths():
    """{experiment: {kind: png}} for every figure the config asks for."""
    paths = {}
    for png, (name, kind) in FIGURES.items():
        paths.setdefault(name, {})[kind] = png
    return paths


def figure_names(kind):
    """The file names (no extension) of every figure of ``kind``: a figure rule's wildcard.

    Each figure rule matches only its own files, so rules never compete for a target.
    """
    names = sorted({Path(png).stem for png, (_, k) in FIGURES.items() if k == kind})
    return "|".join(re.escape(name) for name in names) or "(?!)"


def figure_entry(wildcards):
    """(experiment, kind) of the figure ``results/{dataset}/{figure}.png``."""
    return FIGURES[f"results/{wildcards.dataset}/{wildcards.figure}.png"]


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


def first_seed_run(wildcards):
    """The run directory of the first seed of the figure's experiment."""
    return run_dir(figure_entry(wildcards)[0], config["seeds"][0])


def first_seed_model(wildcards):
    return f"{first_seed_run(wildcards)}/model.pt"


def figure_data(wildcards):
    """The prepared tensors of the figure's experiment."""
    return f"data/{spec(figure_entry(wildcards)[0]).base_dataset}/tensors.pt"


def figure_option(wildcards, key):
    experiment, kind = figure_entry(wildcards)
    return config["experiments"][experiment]["figures"][kind][key]


def noise_gradient_args(wildcards):
    """``--layer L --units U ...`` once per layer of a noise_gradients figure."""
    experiment, kind = figure_entry(wildcards)
    rows = noise_gradient_rows(config["experiments"][experiment]["figures"][kind])
    return " ".join(
        f"--layer {shlex.quote(layer)} --units {' '.join(str(u) for u in units)}"
        for layer, units in rows
    )


def unit_grid_compare_model(wildcards):
    """The first-seed model of the experiment a unit_grid figure compares with (or none)."""
    compare = figure_option_or(wildcards, "compare", None)
    return [f"{run_dir(compare, config['seeds'][0])}/model.pt"] if compare else []


def unit_grid_compare_args(wildcards):
    """``--compare-model M --compare-layer L`` when the unit_grid figure compares, else nothing."""
    models = unit_grid_compare_model(wildcards)
    if not models:
        return ""
    layer = figure_option_or(wildcards, "compare_layer", None) or figure_option(wildcards, "layer")
    return f"--compare-model {shlex.quote(models[0])} --compare-layer {shlex.quote(layer)}"


def figure_option_or(wildcards, key, default):
    """A figure option the schema gives no default (e.g. unit_grid's compare), or ``default``."""
    experiment, kind = figure_entry(wildcards)
    return config["experiments"][experiment]["figures"][kind].get(key, default)


PAPER_TEMPLATES = sorted(Path(workflow.basedir, "paper", "templates").glob("*.tex.j2"))
GENERATED = [f"paper/generated/{t.name.removesuffix('.j2')}" for t in PAPER_TEMPLATES]


def all_figures():
    return [png for kinds in figure_paths().values() for png in kinds.values()]
