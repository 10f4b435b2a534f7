"""The typed view of config.yaml: validation with defaults, one experiment's run spec and
the presentation the paper reads.

Pure Python (no torch) so that the Snakefile can import it cheaply. The JSON Schema in
workflow/schemas/config.schema.yaml is the single source of keys and defaults; validation adds
the figure kinds' options (``whitebox.figures.kinds``) and the evaluation kinds
(``whitebox.evaluation.kinds``) to it, and checks model names against the registered builders.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from whitebox.errors import ConfigError
from whitebox.evaluation.kinds import EVALUATION_KINDS
from whitebox.figures.kinds import FIGURE_KINDS, options_problem, options_schema
from whitebox.schema import SCHEMA_PATH, describe, load_schema, validator_with_defaults
from whitebox.spec import RunSpec, check_model

__all__ = ["ConfigError", "RunSpec", "SCHEMA_PATH", "experiment_spec", "load_config", "presentation",
           "validate_config"]

TORCHVISION_DATASETS = ("mnist", "cifar10")
# What config.yaml says about an experiment beyond its run spec, and the value of each key
# for an experiment that says nothing (the paper shows it under its name).
PRESENTATION_DEFAULTS = {"title": "", "log_entry": "", "family": None, "family_title": "",
                         "finding": None, "reported": {}, "figures": {}, "evaluations": [],
                         "untested": None, "data_note": None}
# The option a claim of these metrics must give (the OOD set, the PGD budget, the hidden layer).
CLAIM_OPTIONS = {"ood_auroc": "set", "pgd_accuracy": "eps", "hidden_noise_stability": "layer"}
# The evaluation that measures a claim's metric, for its experiment and its `than`.
CLAIM_EVALUATIONS = {"slot_update_gain": "slot_update", "slot_update_retention": "slot_update",
                     "ood_auroc": "ood",
                     "class_incremental_auroc": "class_incremental", "pgd_accuracy": "attacks",
                     "dead_units": "unit_activity", "representation_correlation": "unit_activity",
                     "hidden_noise_stability": "hidden_noise_stability",
                     "top_view_share": "view_usage", "label_error_recall": "label_errors",
                     "label_error_precision": "label_errors", "generalisation_gap": "train_fit"}
# Why the paper has no results for an experiment that gpu_experiments: skip left out.
GPU_SKIPPED = "GPU stage skipped (gpu_experiments: skip)"
# Why the paper has no results for an experiment that only_experiments does not list.
NOT_SELECTED = "not run (only_experiments)"


def config_schema(schema_path: Path = SCHEMA_PATH) -> dict:
    """The config schema with every declared figure kind's options and evaluation kind in it."""
    schema = load_schema(schema_path)
    experiment = schema["$defs"]["experiment"]["properties"]
    experiment["figures"].update(additionalProperties=False,
                                 properties={kind: options_schema(kind) for kind in FIGURE_KINDS})
    experiment["evaluations"]["items"] = {"enum": list(EVALUATION_KINDS)}
    return schema


def _integer_seeds(config: dict) -> None:
    """``snakemake --config seeds=[0,1]`` passes the seeds as strings (YAML's base loader):
    digits become integers, anything else stays for the schema to name."""
    seeds = config.get("seeds")
    if isinstance(seeds, list):
        config["seeds"] = [int(seed) if isinstance(seed, str) and seed.isdigit() else seed
                           for seed in seeds]


def validate_config(config: dict, schema_path: Path = SCHEMA_PATH) -> dict:
    """Validate ``config`` in place against the schema, fill defaults and check references.

    Raises ConfigError with a single line naming the offending key or value.
    """
    _integer_seeds(config)
    validator = validator_with_defaults(config_schema(schema_path))
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(f"config error at {describe(errors[0])}")
    datasets = config["datasets"]
    for name, entry in datasets.items():
        if entry.get("source") == "torchvision" and name not in TORCHVISION_DATASETS:
            raise ConfigError(
                f"config error at datasets/{name}: torchvision source knows only "
                f"{', '.join(TORCHVISION_DATASETS)}; use source: imagefolder or synthetic"
            )
        if "subset_of" in entry:
            parent = entry["subset_of"]
            if parent not in datasets or "subset_of" in datasets[parent]:
                raise ConfigError(
                    f"config error at datasets/{name}/subset_of: '{parent}' is not a base "
                    f"dataset; valid: {', '.join(sorted(_base_names(datasets)))}"
                )
    for name, experiment in config["experiments"].items():
        check_model(name, experiment["model"])
        _check_family_and_finding(config, name, experiment)
        if experiment["dataset"] not in datasets:
            raise ConfigError(
                f"config error at experiments/{name}/dataset: unknown dataset "
                f"'{experiment['dataset']}'; valid: {', '.join(sorted(datasets))}"
            )
        for kind, options in experiment["figures"].items():
            if problem := options_problem(kind, options):
                raise ConfigError(f"config error at experiments/{name}/figures/{kind}: {problem}")
        _check_unit_grid(config, name, experiment)
        weights = experiment.get("pretrained")
        if weights is not None and weights not in config["pretrained_weights"]:
            raise ConfigError(
                f"config error at experiments/{name}/pretrained: unknown weights '{weights}'; "
                f"valid: {', '.join(sorted(config['pretrained_weights'])) or 'none'} "
                "(add it under pretrained_weights)"
            )
    for name, experiment in config["experiments"].items():
        _check_random_label_twin(config, name, experiment)
        if "label_errors" in experiment["evaluations"] and "flip_labels" not in experiment["training"]:
            raise ConfigError(f"config error at experiments/{name}/evaluations: label_errors needs "
                              "known label errors; set training: {flip_labels: {share: 0.01}}")
    _check_claims(config)
    _check_gradient_comparison(config)
    figure_files(config)  # two figures must not write the same file
    _leave_out_experiments(config)
    return config


def _check_random_label_twin(config: dict, name: str, experiment: dict) -> None:
    twin_name = experiment.get("random_label_twin")
    if twin_name is None:
        return
    where = f"config error at experiments/{name}/random_label_twin"
    twin = config["experiments"].get(twin_name)
    if twin is None:
        raise ConfigError(f"{where}: unknown experiment '{twin_name}'; "
                          f"valid: {', '.join(sorted(config['experiments']))}")
    if not twin["training"].get("shuffle_labels"):
        raise ConfigError(f"{where}: '{twin_name}' does not train on shuffled labels; "
                          "set its training: {shuffle_labels: true}")
    for key in ("dataset", "model", "model_args"):
        if twin[key] != experiment[key]:
            raise ConfigError(f"{where}: '{twin_name}' has another {key} ({twin[key]!r}); a twin "
                              "is the same model on the same data")


def _check_claims(config: dict) -> None:
    """Every claim names known experiments, has something to compare with, and its
    experiments list the evaluation its metric is measured by."""
    experiments = config["experiments"]
    valid = ", ".join(sorted(experiments))
    for index, claim in enumerate(config["claims"]["items"]):
        where = f"config error at claims/items/{index}"
        for key in ("experiment", "than"):
            if key in claim and claim[key] not in experiments:
                raise ConfigError(f"{where}/{key}: unknown experiment '{claim[key]}'; valid: {valid}")
        option = CLAIM_OPTIONS.get(claim["metric"])
        if option and option not in claim:
            raise ConfigError(f"{where}: a {claim['metric']} claim needs {option}")
        kind = CLAIM_EVALUATIONS.get(claim["metric"])
        for key in ("experiment", "than"):
            if kind and key in claim and kind not in experiments[claim[key]]["evaluations"]:
                raise ConfigError(f"{where}/{key}: a {claim['metric']} claim needs the {kind} "
                                  f"evaluation of '{claim[key]}'; add {kind} to "
                                  f"experiments/{claim[key]}/evaluations")
        if "than" not in claim and ("value" not in claim or claim["metric"] == "time_ratio"):
            needs = "than (a time ratio is between two experiments)" \
                if claim["metric"] == "time_ratio" else "than or value"
            raise ConfigError(f"{where}: '{claim['text']}' needs {needs}")


def _check_gradient_comparison(config: dict) -> None:
    """Every stage of a gradient comparison is an experiment of that dataset."""
    for dataset, stages in config["gradient_comparison"]["stages"].items():
        where = f"config error at gradient_comparison/stages/{dataset}"
        if dataset not in config["datasets"]:
            raise ConfigError(f"{where}: unknown dataset '{dataset}'; "
                              f"valid: {', '.join(sorted(config['datasets']))}")
        for stage in stages:
            entry = config["experiments"].get(stage)
            if entry is None:
                raise ConfigError(f"{where}: unknown experiment '{stage}'; valid: "
                                  f"{', '.join(sorted(config['experiments']))}")
            if entry["dataset"] != dataset:
                raise ConfigError(f"{where}: '{stage}' trains on {entry['dataset']}, not "
                                  f"{dataset}; list it under {entry['dataset']}")


def gradient_comparison_stages(config: dict) -> dict[str, list[str]]:
    """``{dataset: [experiment, ...]}`` of the gradient comparisons, without the experiments
    that are not run (gpu_experiments: skip); a dataset left with none is left out."""
    stages = {dataset: [name for name in names if name in config["experiments"]]
              for dataset, names in config["gradient_comparison"]["stages"].items()}
    return {dataset: names for dataset, names in stages.items() if names}


def gradient_metric_options(settings: dict) -> list[str]:
    """``["--n-images", "64", ...]``: settings as options of ``whitebox gradient-metrics``."""
    return [part for key, value in settings.items()
            for part in (f"--{key.replace('_', '-')}", str(value))]


def job_resources(config: dict, group: str, experiment: str | None = None) -> dict[str, int]:
    """Memory (``mem_mb``) and run time (``runtime``, minutes) of a job of rule ``group``:
    cluster.resources' default, then the group's entry, then the experiment's own
    ``resources`` (training jobs)."""
    table = config["cluster"]["resources"]
    merged = {**table["default"], **table.get(group, {})}
    if experiment is not None:
        merged.update(config["experiments"][experiment].get("resources", {}))
    return merged


def gpu_request(config: dict, experiment: str) -> dict[str, int | str]:
    """How a training job of ``experiment`` asks the scheduler for its GPU: ``gpu`` (a count,
    also what ``--resources gpu=N`` counts), ``gpu_model`` and ``gres`` ('' when unused).

    Only experiments marked ``gpu`` ask; cluster.gpu_request picks ``--gpus`` or ``--gres``.
    """
    cluster = config["cluster"]
    wants = 1 if config["experiments"][experiment].get("gpu") else 0
    model = cluster["gpu_model"] or ""
    if cluster["gpu_request"] == "gres":
        gres = ":".join(["gpu", model, "1"] if model else ["gpu", "1"]) if wants else ""
        return {"gpu": 0, "gpu_model": "", "gres": gres}
    return {"gpu": wants, "gpu_model": model if wants else "", "gres": ""}


def _left_out(config: dict) -> dict[str, str]:
    """``{experiment: why the paper has no results for it}``: those only_experiments does
    not list (when it lists any), then those marked ``gpu`` under gpu_experiments: skip."""
    experiments = config["experiments"]
    only = config["only_experiments"]
    if unknown := [name for name in only if name not in experiments]:
        raise ConfigError(f"config error at only_experiments: unknown experiment '{unknown[0]}'; "
                          f"valid: {', '.join(sorted(experiments))}")
    left_out = {name: NOT_SELECTED for name in experiments if only and name not in only}
    if config["gpu_experiments"] == "skip":
        left_out.update({name: GPU_SKIPPED for name, entry in experiments.items()
                         if entry.get("gpu") and name not in left_out})
    return left_out


def _leave_out_experiments(config: dict) -> None:
    """Remove the experiments that are not run (:func:`_left_out`); an experiment that stays
    must not compare with one that goes. The paper lists what is left out, and the claims
    about it, as untested: ``skipped_experiments`` keeps their entries with ``untested``
    saying why."""
    experiments = config["experiments"]
    left_out = _left_out(config)
    for name, entry in experiments.items():
        if name in left_out:
            continue
        compare = (entry["figures"].get("unit_grid") or {}).get("compare")
        than = (entry.get("finding") or {}).get("than")
        for other in (compare, than, entry.get("random_label_twin")):
            if left_out.get(other) == GPU_SKIPPED:
                raise ConfigError(
                    f"config error at experiments/{name}: it compares with GPU experiment "
                    f"'{other}', which gpu_experiments: skip leaves out"
                )
            if left_out.get(other) == NOT_SELECTED:
                raise ConfigError(
                    f"config error at only_experiments: '{name}' compares with '{other}', which "
                    f"only_experiments leaves out; add '{other}' to only_experiments"
                )
    if set(left_out) == set(experiments):
        listed = " listed in only_experiments" if config["only_experiments"] else ""
        raise ConfigError(f"config error at gpu_experiments: skip leaves no experiment (every one"
                          f"{listed} is marked gpu); use gpu_experiments: run")
    if not left_out:
        return
    config["experiments"] = {n: e for n, e in experiments.items() if n not in left_out}
    config["skipped_experiments"] = {n: {**e, "untested": left_out[n]}
                                     for n, e in experiments.items() if n in left_out}


def _check_family_and_finding(config: dict, name: str, experiment: dict) -> None:
    family = experiment.get("family")
    if family is not None and family not in config["families"]:
        raise ConfigError(
            f"config error at experiments/{name}/family: unknown family '{family}'; "
            f"valid: {', '.join(sorted(config['families'])) or 'none (add it under families)'}"
        )
    finding = experiment.get("finding")
    if finding is not None and finding.get("than", name) not in config["experiments"]:
        raise ConfigError(
            f"config error at experiments/{name}/finding/than: unknown experiment "
            f"'{finding['than']}'; valid: {', '.join(sorted(config['experiments']))}"
        )


def _class_count(config: dict, dataset: str) -> int | None:
    """Number of classes of ``dataset`` when config says it (subsets, synthetic), else None."""
    classes = config["datasets"][dataset].get("classes")
    return len(classes) if classes is not None else None


def _check_unit_grid(config: dict, name: str, experiment: dict) -> None:
    """A unit_grid figure's ``compare`` must be another experiment with as many classes."""
    compare = (experiment["figures"].get("unit_grid") or {}).get("compare")
    if compare is None:
        return
    where = f"config error at experiments/{name}/figures/unit_grid/compare"
    experiments = config["experiments"]
    if compare not in experiments or compare == name:
        raise ConfigError(f"{where}: '{compare}' is not another experiment; valid: "
                          f"{', '.join(sorted(n for n in experiments if n != name))}")
    other = experiments[compare]["dataset"]
    if other not in config["datasets"]:
        return  # reported as the compared experiment's own unknown dataset
    ours, theirs = _class_count(config, experiment["dataset"]), _class_count(config, other)
    if ours is not None and theirs is not None and ours != theirs:
        raise ConfigError(f"{where}: '{compare}' has {theirs} classes ({other}) but '{name}' has "
                          f"{ours} ({experiment['dataset']}); compare experiments with the same classes")


def figure_file(config: dict, experiment: str, kind: str) -> str:
    """Where experiment's figure of ``kind`` goes: ``results/<dataset>/<file>.png``.

    ``file`` defaults to ``<experiment>_<kind>``; config may name it (e.g. the log's
    ``gumbel_unit59``) so that the figure has a short, memorable target.
    """
    entry = config["experiments"][experiment]
    stem = entry["figures"][kind].get("file") or f"{experiment}_{kind}"
    return f"results/{entry['dataset']}/{stem}.png"


def figure_files(config: dict) -> dict[str, tuple[str, str]]:
    """``{png path: (experiment, kind)}`` for every figure config asks for.

    Raises ConfigError when two figures would write the same file.
    """
    files: dict[str, tuple[str, str]] = {}
    for name, entry in config["experiments"].items():
        for kind in entry["figures"]:
            path = figure_file(config, name, kind)
            if path in files:
                other, other_kind = files[path]
                raise ConfigError(
                    f"config error at experiments/{name}/figures/{kind}: {path} is also the "
                    f"{other_kind} figure of '{other}'; give one of them another file name"
                )
            files[path] = (name, kind)
    return files


def load_config(path: Path | str, schema_path: Path = SCHEMA_PATH) -> dict:
    """Read a YAML config file and validate it (defaults filled)."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    return validate_config(config, schema_path)


def _base_names(datasets: dict) -> list[str]:
    return [name for name, entry in datasets.items() if "subset_of" not in entry]


def base_dataset(config: dict, name: str) -> str:
    """The dataset whose prepared tensors hold ``name`` (itself, or the parent of a subset)."""
    if name not in config["datasets"]:
        raise ConfigError(f"unknown dataset '{name}'; valid: {', '.join(sorted(config['datasets']))}")
    return config["datasets"][name].get("subset_of", name)


def base_datasets(config: dict) -> list[str]:
    """Base datasets (not subsets) used by at least one experiment, in a stable order."""
    return sorted({base_dataset(config, e["dataset"]) for e in config["experiments"].values()})


def dataset_source(config: dict, name: str) -> dict:
    """Base dataset ``name``'s entry as the data step and training read it: without its
    ``note``, which only the paper shows (editing the note reruns no data or training job)."""
    return {key: copy.deepcopy(value) for key, value in config["datasets"][name].items()
            if key != "note"}


def _pretrained_entry(config: dict, name: str | None) -> dict | None:
    if name is None:
        return None
    return {"name": name, **copy.deepcopy(config.get("pretrained_weights", {})[name])}


def experiment_spec(config: dict, name: str) -> RunSpec:
    """The run spec of experiment ``name`` from a validated config: what decides its training."""
    experiments = config["experiments"]
    if name not in experiments:
        raise ConfigError(f"unknown experiment '{name}'; valid: {', '.join(sorted(experiments))}")
    entry = experiments[name]
    base = base_dataset(config, entry["dataset"])
    dataset_entry = config["datasets"][entry["dataset"]]
    return RunSpec(
        name=name,
        dataset=entry["dataset"],
        base_dataset=base,
        source=dataset_source(config, base),
        classes=list(dataset_entry["classes"]) if "subset_of" in dataset_entry else None,
        model=entry["model"],
        model_args=copy.deepcopy(entry.get("model_args", {})),
        training=copy.deepcopy(entry.get("training", {})),
        pretrained=_pretrained_entry(config, entry.get("pretrained")),
    )


def presentation(config: dict) -> dict[str, dict]:
    """``{experiment: {title, log_entry, family, family_title, finding, reported, figures,
    evaluations, untested}}``: what the paper says about each experiment beyond its results,
    read from config (so editing it reruns the paper, never training). Experiments that
    gpu_experiments: skip or only_experiments left out are there too, with ``untested``
    saying why. ``data_note`` is the ``note`` of the experiment's images (an imagefolder
    stand-in for a dataset), None for the original data."""
    families = config.get("families", {})
    skipped = config.get("skipped_experiments", {})
    shown = {}
    for name, entry in {**config["experiments"], **skipped}.items():
        given = {key: copy.deepcopy(entry[key]) for key in PRESENTATION_DEFAULTS if key in entry}
        source = config["datasets"].get(base_dataset(config, entry["dataset"]), {})
        shown[name] = {**copy.deepcopy(PRESENTATION_DEFAULTS), "title": name, **given,
                       "family_title": families.get(entry.get("family"), ""),
                       "data_note": source.get("note")}
    return shown
