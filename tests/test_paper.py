"""The paper package: template context from metrics files, LaTeX-safe rendering, and one
end-to-end build of the real templates and main.tex into a PDF."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest
from PIL import Image

from tests.conftest import REPO, require
from whitebox.paper import (
    PaperInputError,
    build_context,
    format_pct,
    latex_environment,
    latex_escape,
    render_paper,
)

TEMPLATES = REPO / "paper" / "templates"

# Two experiments x two seeds; the means are 91.0 (conj_disj) and 94.1 (directional).
ACCURACIES = {"conj_disj": {0: 90.25, 1: 91.75}, "directional": {0: 93.5, 1: 94.7}}
TITLES = {"conj_disj": "Conjunction-Disjunction", "directional": "Directional"}
REPORTED = {"conj_disj": {"test_accuracy": 90.0}, "directional": {}}


def metrics_record(experiment: str, seed: int, accuracy: float, source: dict) -> dict:
    """A metrics.json record in the format training writes."""
    classes = ["airplane", "automobile"]
    return {
        "experiment": experiment,
        "dataset": "cifar2",
        "seed": seed,
        "test_accuracy": accuracy,
        "per_class_accuracy": {"airplane": accuracy - 1.0, "automobile": accuracy + 1.0},
        "classes": classes,
        "epochs": 8,
        "train_images": 10000,
        "test_images": 2000,
        "n_parameters": 247081,
        "wall_time_s": 20.0 + seed,
        "device": "cpu",
        "device_name": "x86_64 CPU",
        "config_hash": f"{experiment[:4]}5e6f7a8b",
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
        "versions": {"python": "3.11.7", "torch": "2.5.1", "torchvision": "0.20.1",
                     "whitebox": "0.1.0"},
        "spec": {
            "name": experiment, "dataset": "cifar2", "base_dataset": "cifar10",
            "source": source, "classes": classes, "model": experiment, "model_args": {},
            "training": {
                "epochs": 8, "batch_size": 128,
                "optimizer": {"name": "adam", "lr": 0.001, "weight_decay": 0,
                              "momentum": 0.9, "nesterov": False},
                "schedule": "constant", "augment": ["hflip"], "label_smoothing": 0,
                "eval_batch_size": 1000,
            },
            "title": TITLES[experiment], "log_entry": "29.07.2024 -- 05.08.2024",
            "reported": REPORTED[experiment],
            "figures": {"gradients": {"n_images": 60},
                        "filters": {"layer": "conv1",
                                    "group_size": 5 if experiment == "conj_disj" else 1}},
            "gpu": False,
        },
    }


def write_png(path: Path, size: tuple[int, int], color: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def write_results(root: Path, source: dict | None = None) -> tuple[list[Path], dict]:
    """Fake results under ``root/results``: metrics files (experiments interleaved, the
    directional model first) and one gradients and one filters PNG per experiment."""
    source = source or {"source": "torchvision"}
    order = [("directional", 1), ("conj_disj", 0), ("directional", 0), ("conj_disj", 1)]
    paths = []
    for experiment, seed in order:
        path = root / "results" / "cifar2" / experiment / f"seed{seed}" / "metrics.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        record = metrics_record(experiment, seed, ACCURACIES[experiment][seed], source)
        path.write_text(json.dumps(record))
        paths.append(path)
    figures = {
        experiment: {
            "gradients": write_png(root / "results" / "cifar2" / f"{experiment}_gradients.png",
                                   (300, 80), (200, 120, 40)),
            "filters": write_png(root / "results" / "cifar2" / f"{experiment}_filters.png",
                                 (200, 60), (40, 120, 200)),
        }
        for experiment in ACCURACIES
    }
    return paths, figures


@pytest.fixture
def results(tmp_path: Path) -> tuple[list[Path], dict]:
    return write_results(tmp_path)


def test_context_groups_seeds_in_order_of_first_appearance(tmp_path, results):
    paths, figures = results
    context = build_context(paths, figures, tmp_path / "paper")
    assert [e["name"] for e in context["experiments"]] == ["directional", "conj_disj"]
    directional, conj_disj = context["experiments"]
    assert directional["seeds"] == [0, 1] and directional["n"] == 2
    assert directional["mean"] == pytest.approx(94.1)
    assert directional["std"] == pytest.approx(0.848528, abs=1e-5)  # sample std (n - 1)
    assert conj_disj["mean"] == pytest.approx(91.0)
    assert conj_disj["difference"] == pytest.approx(1.0)
    assert directional["reported"] is None and directional["difference"] is None
    assert directional["wall_time_mean"] == pytest.approx(20.5)
    assert [c["mean"] for c in conj_disj["per_class"]] == pytest.approx([90.0, 92.0])
    assert context["n_runs"] == 4
    assert context["smoke"] is False


def test_single_seed_has_zero_std(tmp_path, results):
    paths, _ = results
    context = build_context(paths[:1], {}, tmp_path / "paper")
    (only,) = context["experiments"]
    assert only["n"] == 1 and only["std"] == 0.0 and only["mean"] == pytest.approx(94.7)


def test_figure_paths_are_relative_to_the_paper_dir(tmp_path, results):
    paths, figures = results
    context = build_context(paths, figures, tmp_path / "paper")
    directional = context["experiments"][0]
    assert directional["figures"] == {
        "gradients": "../results/cifar2/directional_gradients.png",
        "filters": "../results/cifar2/directional_filters.png",
    }


def test_synthetic_source_sets_the_smoke_flag(tmp_path):
    paths, figures = write_results(tmp_path, {"source": "synthetic", "classes": ["a", "b"]})
    context = build_context(paths, figures, tmp_path / "paper")
    assert context["smoke"] is True
    written = render_paper(TEMPLATES, tmp_path / "generated", context)
    macros = next(p for p in written if p.name == "macros.tex").read_text()
    assert "\\smokeruntrue" in macros and "SMOKE RUN" in macros


def test_imagefolder_source_is_named_in_the_dataset_note(tmp_path):
    source = {"source": "imagefolder", "path": "/data/cifar10-jpeg_v1.zip"}
    paths, figures = write_results(tmp_path, source)
    context = build_context(paths, figures, tmp_path / "paper")
    render_paper(TEMPLATES, tmp_path / "generated", context)
    note = (tmp_path / "generated" / "datasets.tex").read_text()
    assert "not the original download" in note
    assert "cifar10-jpeg\\_v1.zip" in note


def test_missing_metrics_file_is_one_clear_line(tmp_path):
    with pytest.raises(PaperInputError, match="metrics file not found") as error:
        build_context([tmp_path / "nope" / "metrics.json"], {}, tmp_path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("key", ["test_accuracy", "spec.source.source", "spec.title"])
def test_metrics_file_lacking_a_key_is_rejected(tmp_path, results, key):
    paths, _ = results
    record = json.loads(paths[0].read_text())
    *parents, last = key.split(".")
    holder = record
    for part in parents:
        holder = holder[part]
    del holder[last]
    paths[0].write_text(json.dumps(record))
    with pytest.raises(PaperInputError, match=f"lacks key '{key}'") as error:
        build_context(paths, {}, tmp_path)
    assert isinstance(error.value, ValueError) and "\n" not in str(error.value)


def test_seeds_with_different_configs_are_rejected(tmp_path, results):
    paths, _ = results
    record = json.loads(paths[0].read_text())
    stale = copy.deepcopy(record) | {"seed": 5, "config_hash": "ffffffffffff"}
    stale_path = tmp_path / "stale.json"
    stale_path.write_text(json.dumps(stale))
    with pytest.raises(PaperInputError, match="different configs"):
        build_context([paths[0], stale_path], {}, tmp_path)


def test_missing_template_variable_fails_and_writes_nothing(tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "a.tex.j2").write_text("fine \\VAR{present}\n")
    (templates / "b.tex.j2").write_text("accuracy \\VAR{missing_number}\n")
    with pytest.raises(jinja2.UndefinedError, match=r"b\.tex\.j2: 'missing_number' is undefined"):
        render_paper(templates, tmp_path / "generated", {"present": 1})
    assert not (tmp_path / "generated").exists()


def test_render_paper_writes_one_tex_per_template(tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "table.tex.j2").write_text(
        "\\#{ a comment }\\BLOCK{for x in xs}\\VAR{x|pct} \\BLOCK{endfor}done\n"
    )
    written = render_paper(templates, tmp_path / "out" / "generated", {"xs": [94.06, 1]})
    assert written == [tmp_path / "out" / "generated" / "table.tex"]
    assert written[0].read_text() == "94.1 1.0 done\n"
    assert [p.name for p in written[0].parent.iterdir()] == ["table.tex"]  # no temp files


def test_latex_filter_escapes_specials():
    env = latex_environment(TEMPLATES)
    rendered = env.from_string("\\VAR{name|latex}").render(name="a_b 50% & #1 $x$ {y} ~ ^ \\")
    assert rendered == (
        "a\\_b 50\\% \\& \\#1 \\$x\\$ \\{y\\} \\textasciitilde{} \\textasciicircum{} "
        "\\textbackslash{}"
    )
    assert latex_escape("plain text") == "plain text"


def test_pct_formats_one_decimal():
    assert format_pct(94.06) == "94.1"
    assert format_pct(90) == "90.0"
    assert format_pct(None) == "--"
    assert format_pct(0.34, signed=True) == "+0.3"
    assert format_pct(-1.25, signed=True) == "-1.2"
    assert format_pct(-0.01, signed=True) == "+0.0"


def build_pdf(latexmk: str, root: Path, context: dict) -> str:
    """Render the real templates into ``root/paper``, compile main.tex there, return its text."""
    require(shutil.which("pdftotext") is not None, "pdftotext not installed (poppler-utils)")
    paper = root / "paper"
    paper.mkdir()
    for name in ("main.tex", "references.bib"):
        shutil.copy(REPO / "paper" / name, paper / name)
    render_paper(TEMPLATES, paper / "generated", context)
    build = subprocess.run(
        [latexmk, "-pdf", "-interaction=nonstopmode", "-halt-on-error", "main.tex"],
        cwd=paper, capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stdout[-3000:]
    log = (paper / "main.log").read_text(errors="replace")
    assert "undefined" not in log.lower(), "undefined references or citations in main.log"
    text = subprocess.run(["pdftotext", "-layout", "main.pdf", "-"], cwd=paper,
                          capture_output=True, text=True, check=True).stdout
    return text


def test_paper_builds_with_the_reproduced_numbers(tmp_path, latexmk, results):
    paths, figures = results
    text = build_pdf(latexmk, tmp_path, build_context(paths, figures, tmp_path / "paper"))
    assert "91.0" in text and "94.1" in text
    assert "SMOKE RUN" not in text


def test_smoke_paper_says_so_on_the_title_page(tmp_path, latexmk):
    paths, figures = write_results(tmp_path, {"source": "synthetic", "classes": ["a", "b"]})
    text = build_pdf(latexmk, tmp_path, build_context(paths, figures, tmp_path / "paper"))
    first_page = text.split("\f")[0]
    assert "SMOKE RUN on synthetic data" in first_page


def test_main_tex_types_no_result_numbers():
    """Numbers in the prose come from generated/ only: no decimals or percentages typed."""
    body = (REPO / "paper" / "main.tex").read_text().split("\\begin{document}")[1]
    prose = "\n".join(re.sub(r"(?<!\\)%.*", "", line) for line in body.splitlines())
    assert not re.findall(r"\d+\.\d+|\d+\s*\\%", prose)
