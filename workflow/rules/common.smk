# Helpers shared by all rules: run specs, code digests and the paths they imply.
#
# A job reruns when its outputs are missing or its params change. Its params are exactly what
# decides its result: for training the run spec (RunSpec: dataset, model, model_args,
# training, pretrained weights) and the digest of the code the command runs (by content, see
# whitebox.code_identity), never titles, findings or figure options, and no absolute paths, so
# a workspace copied or moved elsewhere reruns nothing.

import json
import re
import shlex
import sys

from whitebox.cli import command_module
from whitebox.cli.compare import COMPARISONS
from whitebox.code_identity import code_digest, model_modules, run_modules
from whitebox.config import (
    ConfigError,
    dataset_source,
    experiment_spec,
    figure_files,
    gpu_request,
    gradient_comparison_stages,
    gradient_metric_options,
    job_resources,
    presentation,
)
from whitebox.evaluation.kinds import EVALUATION_KINDS
from whitebox.figures.kinds import COMPARE, DATA, FIGURE_KINDS, SLOT_UPDATE

# Every figure config asks for: {"results/<dataset>/<file>.png": (experiment, kind)}.
FIGURES = figure_files(config)
SPECS = {name: experiment_spec(config, name) for name in config["experiments"]}
# What the paper and the figures say about each experiment beyond its run (config.presentation).
SHOWN = presentation(config)


def spec(experiment):
    """The run spec of ``experiment``; an unknown name (a mistyped target path) stops the
    workflow with one line listing the valid ones."""
    if experiment not in SPECS:
        sys.exit(f"whitebox: unknown experiment '{experiment}'; valid: {', '.join(sorted(SPECS))}")
    return SPECS[experiment]


def command_code(command, *modules, experiment=None):
    """Digest of the code ``python -m whitebox <command>`` runs: the command's module and what
    it imports, ``modules`` it loads by name (a figure's renderer, an evaluation), and the
    modules of the experiment's model and, where the command trains (augments batches), of
    its augmentations (``code_identity.run_modules``)."""
    roots = ["whitebox.__main__", command_module(command), *modules]
    if experiment is not None:
        run = spec(experiment)
        roots = run_modules(roots, run.model, run.model_args, run.training.get("augment", []))
    return code_digest(roots)


def code_module(target):
    """``whitebox.figures.grids`` of ``whitebox.figures.grids:render_gradients``."""
    return target.partition(":")[0]


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


def all_runs(name_in_run):
    """``<run dir>/<name_in_run>`` of every experiment x seed."""
    return [f"{run_dir(name, seed)}/{name_in_run}" for name in config["experiments"]
            for seed in config["seeds"]]


def all_evaluations():
    """Every evaluation JSON the config asks for (each experiment x seed x evaluation)."""
    return [
        f"{run_dir(name, seed)}/{evaluation}.json"
        for name, entry in config["experiments"].items()
        for seed in config["seeds"]
        for evaluation in entry["evaluations"]
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


def presentation_json():
    """What the paper says about each experiment beyond its results (titles, families,
    findings, reported numbers, figure options), from config.yaml: see config.presentation."""
    return json.dumps(SHOWN, sort_keys=True)


def figure_names(kind):
    """The file names (no extension) of every figure of ``kind``: a figure rule's wildcard.

    Each figure rule matches only its own files, so rules never compete for a target.
    """
    names = sorted({Path(png).stem for png, (_, k) in FIGURES.items() if k == kind})
    return "|".join(re.escape(name) for name in names) or "(?!)"


def figure_entry(wildcards):
    """(experiment, kind) of the figure ``results/{dataset}/{figure}.png``."""
    return FIGURES[f"results/{wildcards.dataset}/{wildcards.figure}.png"]


def figure_args(figures):
    return " ".join(f"--figure {name}:{kind}={png}" for png, (name, kind) in figures.items())


def prepared_data(wildcards):
    """The prepared tensors of the experiment's base dataset (checks the path's dataset)."""
    experiment = spec(wildcards.experiment)
    if experiment.dataset != wildcards.dataset:
        sys.exit(f"whitebox: experiment '{wildcards.experiment}' uses dataset "
                 f"'{experiment.dataset}', not '{wildcards.dataset}'")
    return f"data/{experiment.base_dataset}/tensors.pt"


def evaluation_inputs(wildcards):
    """The model, its prepared data and the other datasets the evaluation kind reads."""
    kind = EVALUATION_KINDS[wildcards.evaluation]
    return {
        "model": f"results/{wildcards.dataset}/{wildcards.experiment}/seed{wildcards.seed}/model.pt",
        "data": prepared_data(wildcards),
        "extra": [f"data/{dataset}/tensors.pt" for dataset in kind.extra_data],
    }


def evaluation_code(wildcards):
    kind = EVALUATION_KINDS[wildcards.evaluation]
    return command_code("evaluate", code_module(kind.run), experiment=wildcards.experiment)


def mirror_option(wildcards):
    """``--mirror DIR`` (as config gives it: relative to the workspace) when config sets
    data_mirror, else nothing."""
    mirror = config["data_mirror"]
    return f"--mirror {shlex.quote(str(mirror))}" if mirror else ""


def first_seed_run(experiment):
    """The run directory of the first seed of ``experiment``."""
    return run_dir(experiment, config["seeds"][0])


def figure_inputs(wildcards):
    """What a figure reads: the first-seed model of its experiment, and what its kind declares
    (the prepared data, a compared experiment's model, the slot_update evaluation)."""
    experiment, kind = figure_entry(wildcards)
    declared = FIGURE_KINDS[kind]
    options = config["experiments"][experiment]["figures"][kind]
    inputs = {}
    if declared.needs_model():
        inputs["model"] = f"{first_seed_run(experiment)}/model.pt"
    if DATA in declared.inputs:
        inputs["data"] = f"data/{spec(experiment).base_dataset}/tensors.pt"
    if COMPARE in declared.inputs and options.get("compare"):
        inputs["compare"] = f"{first_seed_run(options['compare'])}/model.pt"
    if SLOT_UPDATE in declared.inputs:
        inputs["evaluation"] = f"{first_seed_run(experiment)}/slot_update.json"
    return inputs


def figure_command_args(wildcards):
    """The options of ``whitebox figure KIND``: its inputs, titles and the kind's options.

    Computed from the wildcards alone (not the rule's ``input``): Snakemake records, and
    reruns the job on a change of, only params that do not read the job's input.
    """
    experiment, kind = figure_entry(wildcards)
    inputs = figure_inputs(wildcards)
    options = config["experiments"][experiment]["figures"][kind]
    args = []
    for name in ("model", "data", "evaluation"):
        if name in inputs:
            args += [f"--{name}", inputs[name]]
    if "model" in inputs:
        args += ["--title", SHOWN[experiment]["title"]]
    if "compare" in inputs:
        args += ["--compare-model", inputs["compare"], "--compare-title",
                 SHOWN[options["compare"]]["title"]]
    args += ["--options", json.dumps(options, sort_keys=True)]
    return shlex.join(args)


def figure_code(wildcards):
    experiment, kind = figure_entry(wildcards)
    return command_code("figure", code_module(FIGURE_KINDS[kind].render), experiment=experiment)


# The figures across experiments (comparison.smk).
# The experiments a gradient comparison draws, per dataset (those not run are left out).
COMPARED_STAGES = gradient_comparison_stages(config)
# Controls (trained on shuffled labels) are no points of the accuracy-quality figure.
CONTROLS = {entry.get("random_label_twin") for entry in config["experiments"].values()} - {None}
QUALITY_EXPERIMENTS = [name for name in config["experiments"] if name not in CONTROLS]


def quality_runs(name_in_run):
    """``<run dir>/<name_in_run>`` of every seed of every experiment that is not a control."""
    return [f"{run_dir(name, seed)}/{name_in_run}" for name in QUALITY_EXPERIMENTS
            for seed in config["seeds"]]


def quality_twins_json():
    """What the accuracy-quality figure reads of config beyond the runs, and only that (so
    rewording a finding or a claim's margin reruns it not): each experiment's family and
    finding's ``than``, and the claims that compare with another experiment."""
    shown = {name: {"family": SHOWN[name]["family"],
                    "finding": {"than": (SHOWN[name]["finding"] or {}).get("than")}}
             for name in QUALITY_EXPERIMENTS}
    claims = [{"experiment": claim["experiment"], "than": claim["than"]}
              for claim in config["claims"]["items"] if "than" in claim]
    return {"presentation": json.dumps(shown, sort_keys=True),
            "claims": json.dumps({"items": claims}, sort_keys=True)}


def comparison_options(block):
    """``--n-images 8 ...``: the numbers of config.yaml's ``block`` as options."""
    return shlex.join(gradient_metric_options(
        {key: value for key, value in config[block].items() if key != "stages"}))


def compared_models(wildcards):
    """The first-seed model of every stage compared on the dataset."""
    return [f"{first_seed_run(name)}/model.pt" for name in COMPARED_STAGES[wildcards.dataset]]


def compared_data(wildcards):
    """The prepared tensors of the compared dataset's base dataset."""
    return f"data/{spec(COMPARED_STAGES[wildcards.dataset][0]).base_dataset}/tensors.pt"


def compared_stage_args(wildcards):
    """``--stage TITLE MODEL ...`` and ``--data``, from the wildcards alone (see figure_command_args)."""
    stages = COMPARED_STAGES[wildcards.dataset]
    args = [part for name in stages
            for part in ("--stage", SHOWN[name]["title"], f"{first_seed_run(name)}/model.pt")]
    return shlex.join(args + ["--data", compared_data(wildcards)])


def compared_code(wildcards):
    """The command, its renderer and the model modules of every stage it loads."""
    models = [module for name in COMPARED_STAGES[wildcards.dataset]
              for module in model_modules(spec(name).model, spec(name).model_args)]
    return command_code("compare", code_module(COMPARISONS["gradients"].render), *sorted(set(models)))


# Relative to the workspace, like every path of a job: a workspace moved elsewhere reruns nothing.
PAPER_TEMPLATES = [f"paper/templates/{t.name}"
                   for t in sorted(Path(workflow.basedir, "paper", "templates").glob("*.tex.j2"))]
GENERATED = [f"paper/generated/{Path(t).name.removesuffix('.j2')}" for t in PAPER_TEMPLATES]
