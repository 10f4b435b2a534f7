"""The README's worked example of a new stage ("Adding a stage"), run as written: one new module
under src/whitebox/models/ and one config.yaml entry, in a copy of a finished smoke workspace.
It trains only the new stage, gets gradient metrics and its figure, and a row in the paper."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess

import pytest

from tests.conftest import REPO
from tests.integration.test_smoke_dag import dry_run_jobs, smoke_seeds
from tests.integration.workspace import snakemake

pytestmark = pytest.mark.slow


def readme_example() -> tuple[str, str]:
    """The Python module and the config entry of README.md's "Adding a stage" section."""
    section = REPO.joinpath("README.md").read_text().split("## Adding a stage")[1].split("\n## ")[0]
    module = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    entry = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    return module, entry


def test_the_readme_stage_trains_and_reaches_the_paper(smoke_run, tmp_path):
    module, entry = readme_example()
    name = re.search(r'@register_model\("(\w+)"\)', module).group(1)
    workspace = tmp_path / "workspace"
    shutil.copytree(smoke_run, workspace, symlinks=True)
    (workspace / "src" / "whitebox" / "models" / f"{name}.py").write_text(module)
    config = workspace / "config.yaml"
    text = config.read_text()
    assert "\nclaims:" in text
    config.write_text(text.replace("\nclaims:", "\n" + entry + "\nclaims:", 1))

    jobs = dry_run_jobs(workspace)
    assert jobs["train"] == len(smoke_seeds(workspace))  # nothing else retrains
    assert jobs["gradient_metrics"] == len(smoke_seeds(workspace)) and jobs["gradients"] == 1

    result = snakemake(workspace, "--profile", "profiles/smoke", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (workspace / f"results/cifar2/{name}_gradients.png").stat().st_size > 0
    with open(workspace / "results/summary/experiments.csv") as table:
        rows = {row["experiment"]: row for row in csv.DictReader(table)}
    assert rows[name]["test_accuracy_mean"] and rows[name]["alignment_mean"]
    text = subprocess.run(["pdftotext", "-layout", str(workspace / "paper" / "main.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout
    title = re.search(r"title: (.+)", entry).group(1)
    assert title in text
