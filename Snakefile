# whitebox: one config -> datasets -> trained models -> figures -> paper/main.pdf.
# The index of the workflow: config, its validation, the rule files, and `rule all`.
# Each rule runs one `python -m whitebox` command (see workflow/rules/*.smk).

import shlex
import sys
from pathlib import Path

WHITEBOX_ROOT = Path(workflow.basedir) / "src"
sys.path.insert(0, str(WHITEBOX_ROOT))

from whitebox import worker
from whitebox.config import ConfigError, validate_config


configfile: "config.yaml"


try:
    validate_config(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")
except ConfigError as error:
    sys.exit(f"whitebox: {error}")


# Rules run the library from this checkout, also inside --use-conda environments.
shell.prefix(
    "set -euo pipefail; export PYTHONPATH="
    + shlex.quote(str(WHITEBOX_ROOT))
    + "${{PYTHONPATH:+:$PYTHONPATH}}; "
)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/comparison.smk"
include: "workflow/rules/paper.smk"


report: "workflow/report/workflow.rst"


# Jobs run on this machine (all of them, or the localrules under a cluster executor) share one
# warm worker process (whitebox.worker): each command is a fork of a process that has torch
# imported already, instead of a fresh interpreter per job.
WORKERS = []


onstart:
    if not workflow.remote_exec:
        WORKERS.append(worker.start())


onsuccess:
    for process in WORKERS:
        worker.stop(process)


onerror:
    for process in WORKERS:
        worker.stop(process)


wildcard_constraints:
    dataset="|".join(config["datasets"]),
    experiment=r"[^/]+",
    seed=r"\d+",
    evaluation="|".join(EVALUATION_KINDS),


# Cheap or network-bound steps run on the submit host, not as cluster jobs. Gradient metrics
# run on the CPU in seconds (benchmarks/run.py --only metrics: at most a few % of training), so
# a cluster submission per run would cost more than the work.
localrules:
    all,
    prepare_dataset,
    gradient_metrics,
    paper_generated,
    paper_pdf,
    presentation,
    summary_tables,


rule all:
    default_target: True
    input:
        "paper/main.pdf",
        rules.summary_tables.output,
        COMPARISON_FIGURES,
