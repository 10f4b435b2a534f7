"""environment.yml and workflow/envs/*.yaml stay valid and in step with pyproject.toml: the
same packages with the same version ranges.

``snakemake --use-conda`` is not exercised anywhere: conda's channels cannot be reached from
our development and CI machines, so these tests check the files themselves (valid YAML, no
``defaults`` channel, the same packages and bounds as pyproject.toml), not that conda can
solve and build the environments.
"""

from __future__ import annotations

import re
import tomllib

import yaml

from tests.conftest import REPO

CONDA_NAMES = {"torch": "pytorch", "matplotlib": "matplotlib-base"}
WORKFLOW_ONLY = {"snakemake", "snakemake-executor-plugin-slurm"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement, maxsplit=1)[0].strip().lower()


def _bounds(requirement: str) -> set[str]:
    """The version constraints of a requirement, e.g. {'>=2.5', '<3'} (also for conda specs)."""
    constraints = requirement[len(_name(requirement)):].strip()
    bounds = {part.replace(" ", "") for part in constraints.split(",") if part.strip()}
    assert all(re.fullmatch(r"(>=|<=|<|>|==|!=)[\w.]+", b) for b in bounds), requirement
    return bounds


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _conda_packages(path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    assert env["channels"] and "defaults" not in env["channels"]
    packages = {}
    for dependency in env["dependencies"]:
        assert isinstance(dependency, str), f"{path.name}: unexpected {dependency!r}"
        packages[_name(dependency)] = dependency
    return packages


def _expected(requirements: list[str]) -> dict[str, str]:
    return {CONDA_NAMES.get(_name(r), _name(r)): r for r in requirements}


def test_environment_yml_has_the_project_and_test_packages():
    project = _pyproject()["project"]
    expected = _expected(project["dependencies"] + project["optional-dependencies"]["test"])
    packages = _conda_packages(REPO / "environment.yml")
    assert set(packages) - {"python", "pip"} == set(expected)
    for name, requirement in expected.items():
        assert _bounds(packages[name]) == _bounds(requirement), (name, packages[name], requirement)


def test_rule_env_has_the_library_runtime():
    expected = _expected([r for r in _pyproject()["project"]["dependencies"]
                          if _name(r) not in WORKFLOW_ONLY])
    packages = _conda_packages(REPO / "workflow" / "envs" / "whitebox.yaml")
    assert set(packages) - {"python", "pip"} == set(expected)
    for name, requirement in expected.items():
        assert _bounds(packages[name]) == _bounds(requirement), (name, packages[name], requirement)


def test_every_conda_directive_points_to_an_existing_env():
    for rules in (REPO / "workflow" / "rules").glob("*.smk"):
        for env in re.findall(r'conda:\s*\n\s*"([^"]+)"', rules.read_text()):
            assert (rules.parent / env).resolve().is_file(), f"{rules.name}: {env}"
    latex = _conda_packages(REPO / "workflow" / "envs" / "latex.yaml")
    assert "latexmk" in latex


def test_python_requirement_matches():
    assert _pyproject()["project"]["requires-python"] == ">=3.11"
    assert "python>=3.11" in _conda_packages(REPO / "environment.yml")["python"]
