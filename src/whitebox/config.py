"""The typed view of config.yaml: validation with defaults, and one experiment's spec.

Pure Python (no torch) so that the Snakefile can import it cheaply. The JSON Schema
in workflow/schemas/config.schema.yaml is the single source of keys and defaults.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
TORCHVISION_DATASETS = ("mnist", "cifar10")
# Figures of any model, then those of an INH model (its slots, the slot-update curve), then
# the views of a layer's units and kernels (every unit on noise by class; invariance layers),
# then the parts of a prototype network (where they match, what they were pushed to).
FIGURE_KINDS = ("gradients", "filters", "slots", "slot_update", "noise_gradients", "unit_grid",
                "kernel_views", "prototype_parts")


class ConfigError(ValueError):
    """A mistake in the user's configuration; the message is one line naming it."""


def _validator_with_defaults(schema: dict) -> jsonschema.protocols.Validator:
    """A 2020-12 validator that also fills in ``default`` values of missing properties."""
    base = jsonschema.Draft202012Validator
    validate_properties = base.VALIDATORS["properties"]

    def fill_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    extended = jsonschema.validators.extend(base, {"properties": fill_defaults})
    return extended(schema)


def _describe(error: jsonschema.ValidationError, prefix: tuple[str, ...] = ()) -> str:
    """``<key path>: <message>``; ``prefix`` leads the path (a spec is one experiment entry)."""
    where = "/".join(str(p) for p in (*prefix, *error.absolute_path)) or "<top level>"
    if error.validator == "oneOf" and error.context:
        # Report the branch that got furthest instead of "is not valid under any".
        best = jsonschema.exceptions.best_match(error.context)
        return f"{where}: {best.message}"
    if error.validator == "pattern" and "valid_values" in error.schema:
        # A regular expression tells users little: say what the schema documents instead.
        return f"{where}: {error.instance!r} is not one of {error.schema['valid_values']}"
    return f"{where}: {error.message}"


def validate_config(config: dict, schema_path: Path = SCHEMA_PATH) -> dict:
    """Validate ``config`` in place against the schema, fill defaults and check references.

    Raises ConfigError with a single line naming the offending key or value.
    """
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = _validator_with_defaults(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(f"config error at {_describe(errors[0])}")
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
        _check_family_and_finding(config, name, experiment)
        if experiment["dataset"] not in datasets:
            raise ConfigError(
                f"config error at experiments/{name}/dataset: unknown dataset "
                f"'{experiment['dataset']}'; valid: {', '.join(sorted(datasets))}"
            )
        noise = experiment["figures"].get("noise_gradients")
        if noise is not None and ("layer" in noise) == ("layers" in noise):
            raise ConfigError(
                f"config error at experiments/{name}/figures/noise_gradients: give either "
                "layer (with units) or layers (a map of layer -> units)"
            )
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
    _check_claims(config)
    figure_files(config)  # two figures must not write the same file
    if config["gpu_experiments"] == "skip":
        _drop_gpu_experiments(config)
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
    """Every claim names known experiments and has something to compare with."""
    experiments = config["experiments"]
    valid = ", ".join(sorted(experiments))
    for index, claim in enumerate(config["claims"]["items"]):
        where = f"config error at claims/items/{index}"
        for key in ("experiment", "than"):
            if key in claim and claim[key] not in experiments:
                raise ConfigError(f"{where}/{key}: unknown experiment '{claim[key]}'; valid: {valid}")
        if "than" not in claim and ("value" not in claim or claim["metric"] == "time_ratio"):
            needs = "than (a time ratio is between two experiments)" \
                if claim["metric"] == "time_ratio" else "than or value"
            raise ConfigError(f"{where}: '{claim['text']}' needs {needs}")


def gradient_metric_settings(given: dict, schema_path: Path = SCHEMA_PATH) -> dict:
    """The gradient_metrics settings: ``given`` checked against the schema's block, its
    defaults filled in for the rest. Raises ConfigError naming every bad setting on one line."""
    schema = yaml.safe_load(Path(schema_path).read_text())["properties"]["gradient_metrics"]
    settings = copy.deepcopy(given)
    errors = sorted(_validator_with_defaults(schema).iter_errors(settings),
                    key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError("gradient_metrics settings: " + "; ".join(_describe(e) for e in errors))
    return settings


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


def _drop_gpu_experiments(config: dict) -> None:
    """Remove the experiments marked ``gpu`` (gpu_experiments: skip); an experiment that
    stays must not compare with one that goes."""
    experiments = config["experiments"]
    dropped = {name for name, entry in experiments.items() if entry.get("gpu")}
    for name, entry in experiments.items():
        if name in dropped:
            continue
        compare = (entry["figures"].get("unit_grid") or {}).get("compare")
        than = (entry.get("finding") or {}).get("than")
        for other in (compare, than, entry.get("random_label_twin")):
            if other in dropped:
                raise ConfigError(
                    f"config error at experiments/{name}: it compares with GPU experiment "
                    f"'{other}', which gpu_experiments: skip leaves out"
                )
    # Claims about a stage that is left out are left out with it.
    config["claims"]["items"] = [
        claim for claim in config["claims"]["items"]
        if claim["experiment"] not in dropped and claim.get("than") not in dropped]
    if dropped == set(experiments):
        raise ConfigError("config error at gpu_experiments: skip leaves no experiment (every one "
                          "is marked gpu); use gpu_experiments: run")
    config["experiments"] = {n: e for n, e in experiments.items() if n not in dropped}


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


def noise_gradient_rows(options: dict) -> list[tuple[str, list[int]]]:
    """``[(layer, units), ...]`` of a noise_gradients figure (one ``layer`` or a ``layers`` map).

    Several layers come in name order: a spec passed as JSON has its keys sorted, so the figure
    (drawn from config) and its caption (written from the spec in metrics.json) agree.
    """
    if "layers" in options:
        return [(layer, list(units)) for layer, units in sorted(options["layers"].items())]
    return [(options["layer"], list(options["units"]))]


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


@dataclass(frozen=True)
class ExperimentSpec:
    """Everything that decides one experiment's training result (hashed for provenance)."""

    name: str
    dataset: str
    base_dataset: str
    source: dict
    classes: list[str] | None
    model: str
    model_args: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    title: str = ""
    log_entry: str = ""
    reported: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
    evaluations: list = field(default_factory=list)
    gpu: bool = False
    pretrained: dict | None = None  # {name, url, file, fallback} of pretrained_weights
    family: str | None = None
    family_title: str = ""
    finding: dict | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ExperimentSpec:
        """Parse a spec (as ``to_json`` writes it) and check it with ``check_spec``, so a
        hand-written ``--spec`` fails with one line naming the key, before anything is written."""
        try:
            fields_ = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"the experiment spec is not valid JSON: {error}") from None
        if not isinstance(fields_, dict):
            raise ConfigError("the experiment spec must be a JSON object")
        check_spec(fields_)
        return cls(**fields_)

    def config_hash(self) -> str:
        """Hash of what decides training (titles, figures, evaluations, findings excluded), 12 hex
        digits."""
        display = ("title", "figures", "evaluations", "family", "family_title", "finding")
        relevant = {k: v for k, v in asdict(self).items() if k not in display}
        blob = json.dumps(relevant, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def check_spec(spec: dict, schema_path: Path = SCHEMA_PATH) -> None:
    """Check a spec's fields, and its dataset, model, model_args and training against the
    schema's experiment entry (the keys a spec shares with config.yaml).

    Raises ConfigError with one line naming the key, e.g.
    ``config error at experiments/conv_simple/training/epochs: -3 is less than the minimum of 1``.
    """
    known = {f.name for f in fields(ExperimentSpec)}
    required = {f.name for f in fields(ExperimentSpec)
                if f.default is MISSING and f.default_factory is MISSING}
    problems = []
    if unknown := sorted(set(spec) - known):
        problems.append(f"unknown field(s) {', '.join(unknown)}")
    if missing := sorted(required - set(spec)):
        problems.append(f"missing field(s) {', '.join(missing)}")
    if problems:
        raise ConfigError(f"experiment spec: {'; '.join(problems)} (write it with ExperimentSpec.to_json)")
    schema = yaml.safe_load(Path(schema_path).read_text())
    experiment = {"$defs": schema["$defs"], "$ref": "#/$defs/experiment"}
    shared = {key: spec[key] for key in ("dataset", "model", "model_args", "training") if key in spec}
    errors = sorted(jsonschema.Draft202012Validator(experiment).iter_errors(shared),
                    key=lambda e: list(e.absolute_path))
    if errors:
        error, name = errors[0], spec["name"] if isinstance(spec["name"], str) else "?"
        if list(error.absolute_path) == ["model"] and error.validator == "enum":
            raise ConfigError(f"config error at experiments/{name}/model: unknown model "
                              f"'{error.instance}'; valid: {', '.join(error.validator_value)}")
        raise ConfigError(f"config error at {_describe(error, ('experiments', name))}")


def _pretrained_entry(config: dict, name: str | None) -> dict | None:
    if name is None:
        return None
    return {"name": name, **copy.deepcopy(config.get("pretrained_weights", {})[name])}


def experiment_spec(config: dict, name: str) -> ExperimentSpec:
    """The resolved spec of experiment ``name`` from a validated config."""
    experiments = config["experiments"]
    if name not in experiments:
        raise ConfigError(f"unknown experiment '{name}'; valid: {', '.join(sorted(experiments))}")
    entry = experiments[name]
    base = base_dataset(config, entry["dataset"])
    dataset_entry = config["datasets"][entry["dataset"]]
    return ExperimentSpec(
        name=name,
        dataset=entry["dataset"],
        base_dataset=base,
        source=copy.deepcopy(config["datasets"][base]),
        classes=list(dataset_entry["classes"]) if "subset_of" in dataset_entry else None,
        model=entry["model"],
        model_args=copy.deepcopy(entry.get("model_args", {})),
        training=copy.deepcopy(entry.get("training", {})),
        title=entry.get("title", name),
        log_entry=entry.get("log_entry", ""),
        reported=copy.deepcopy(entry.get("reported", {})),
        figures=copy.deepcopy(entry.get("figures", {})),
        evaluations=list(entry.get("evaluations", [])),
        gpu=bool(entry.get("gpu", False)),
        pretrained=_pretrained_entry(config, entry.get("pretrained")),
        family=entry.get("family"),
        family_title=config.get("families", {}).get(entry.get("family"), ""),
        finding=copy.deepcopy(entry.get("finding")),
    )
