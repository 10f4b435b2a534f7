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
    aggregate,
    format_pct,
    latex_environment,
    latex_escape,
    render_paper,
)
from whitebox.paper.context import PRESENTATION_DEFAULTS
from whitebox.paper.context import build_context as paper_context
from whitebox.paper.latex import format_seconds, format_stat

TEMPLATES = REPO / "paper" / "templates"

# Two experiments x two seeds; the means are 91.0 (conj_disj) and 94.1 (directional).
ACCURACIES = {"conj_disj": {0: 90.25, 1: 91.75}, "directional": {0: 93.5, 1: 94.7}}
TITLES = {"conj_disj": "Conjunction-Disjunction", "directional": "Directional"}
REPORTED = {"conj_disj": {"test_accuracy": 90.0}, "directional": {}}


def build_context(paths, figures, paper_dir, **options):
    """The paper's context with each experiment's presentation (title, family, finding,
    reported, figures, ...) given as the workflow gives it, from config: the fake records
    below carry it next to their run spec (``spec``), where a test can edit it in one place."""
    if "presentation" not in options:
        shown = {}
        for path in paths:
            record = json.loads(Path(path).read_text()) if Path(path).is_file() else {}
            spec = record.get("spec", {})
            shown[record.get("experiment")] = {key: spec[key] for key in PRESENTATION_DEFAULTS
                                               if key in spec}
        options["presentation"] = shown
    return paper_context(paths, figures, paper_dir, **options)


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


STAND_IN = "CIFAR-10 re-encoded as JPEG (stand-in), not CIFAR-10"


def write_stand_in_results(root: Path) -> tuple[list[Path], dict]:
    """Fake results on an imagefolder stand-in for CIFAR-10 whose config entry carries a note
    (which the paper reads from config's presentation, here next to the spec)."""
    paths, figures = write_results(root, {"source": "imagefolder", "path": "/d/cifar10-jpeg.zip"})
    for path in paths:
        record = json.loads(path.read_text())
        record["spec"]["data_note"] = STAND_IN
        path.write_text(json.dumps(record))
    return paths, figures


def test_a_dataset_note_stamps_the_paper_and_names_the_stand_in(tmp_path):
    paths, figures = write_stand_in_results(tmp_path)
    context = build_context(paths, figures, tmp_path / "paper")
    assert context["data_notes"] == [STAND_IN] and context["smoke"] is False
    assert context["datasets"][0]["note"] == STAND_IN
    written = {p.name: p.read_text() for p in render_paper(TEMPLATES, tmp_path / "generated", context)}
    assert "\\standindatatrue" in written["macros.tex"]
    assert f"STAND-IN DATA ---\n  {STAND_IN}" in written["macros.tex"]
    assert "not the original download" in written["datasets.tex"]
    assert f"\\textbf{{{STAND_IN}.}}" in written["datasets.tex"]
    plain = build_context(write_results(tmp_path / "plain")[0], {}, tmp_path / "plain" / "paper")
    assert plain["data_notes"] == [] and plain["datasets"][0]["note"] is None
    macros = next(p for p in render_paper(TEMPLATES, tmp_path / "plain" / "generated", plain)
                  if p.name == "macros.tex").read_text()
    assert "\\standindatafalse" in macros


def test_imagefolder_source_is_named_in_the_dataset_note(tmp_path):
    source = {"source": "imagefolder", "path": "/data/cifar10-jpeg_v1.zip"}
    paths, figures = write_results(tmp_path, source)
    context = build_context(paths, figures, tmp_path / "paper")
    render_paper(TEMPLATES, tmp_path / "generated", context)
    note = (tmp_path / "generated" / "datasets.tex").read_text()
    assert "not the original download" in note
    assert "cifar10-jpeg\\_v1.zip" in note


def test_cub_note_gives_the_crop_and_the_image_size_of_the_runs(tmp_path):
    paths, figures = write_results(tmp_path, {"source": "cub", "crop": "none"})
    for path in paths:
        record = json.loads(path.read_text())
        record["image_shape"] = [3, 112, 112]  # as training recorded it
        path.write_text(json.dumps(record))
    render_paper(TEMPLATES, tmp_path / "generated", build_context(paths, figures, tmp_path / "p"))
    note = " ".join((tmp_path / "generated" / "datasets.tex").read_text().split())
    assert "CUB-200-2011 archive" in note and "resized and centre-cropped to $112 \\times 112$" in note


def test_missing_metrics_file_is_one_clear_line(tmp_path):
    with pytest.raises(PaperInputError, match="metrics file not found") as error:
        build_context([tmp_path / "nope" / "metrics.json"], {}, tmp_path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("key", ["test_accuracy", "spec.source.source", "spec.model"])
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


def test_stand_in_paper_carries_the_note_on_every_page(tmp_path, latexmk):
    paths, figures = write_stand_in_results(tmp_path)
    text = build_pdf(latexmk, tmp_path, build_context(paths, figures, tmp_path / "paper"))
    pages = [page for page in text.split("\f") if page.strip()]
    assert len(pages) > 1 and all("STAND-IN DATA" in page for page in pages)
    assert "SMOKE RUN" not in text


def test_main_tex_types_no_result_numbers():
    """Numbers in the prose come from generated/ only: no decimals or percentages typed."""
    body = (REPO / "paper" / "main.tex").read_text().split("\\begin{document}")[1]
    prose = "\n".join(re.sub(r"(?<!\\)%.*", "", line) for line in body.splitlines())
    assert not re.findall(r"\d+\.\d+|\d+\s*\\%", prose)


# -- Incremental Neural Hashing: slots, evaluation files, the INH tables -----------------
MNIST_CLASSES = [str(digit) for digit in range(10)]
# inh_mnist: accuracy 97.0 / 98.0 (mean 97.5), slots 990 / 1010 (mean 1000, std 14.142)
INH_ACCURACY = {0: 97.0, 1: 98.0}
INH_SLOTS = {0: 990, 1: 1010}
MLP_ACCURACY = {0: 98.1, 1: 98.3}


def mnist_record(experiment: str, seed: int, accuracy: float, source: dict, *,
                 slots: int | None = None, reported: dict | None = None,
                 figures: dict | None = None, evaluations: list | None = None,
                 classes: list[str] | None = None) -> dict:
    """A metrics.json of an MNIST-like run; INH runs carry ``slots`` and ``compression``."""
    classes = classes or MNIST_CLASSES
    train_images = 6000 * len(classes)
    record = metrics_record("conj_disj", seed, accuracy, source)
    record.update({
        "experiment": experiment, "dataset": "mnist" if len(classes) == 10 else "mnist04",
        "per_class_accuracy": {name: accuracy for name in classes}, "classes": classes,
        "train_images": train_images, "test_images": 1000 * len(classes),
        "n_parameters": 784 * (slots or 1000) + 1, "config_hash": f"{experiment[:6]}cafe",
    })
    if slots is not None:
        record.update(slots=slots, compression=round(train_images / slots, 2))
    record["spec"] = {
        **record["spec"], "name": experiment, "dataset": record["dataset"],
        "base_dataset": "mnist", "model": "inh" if slots is not None else "mlp",
        "model_args": {"lr": 3.0} if slots is not None else {},
        "title": {"inh_mnist": "Incremental Neural Hashing", "mlp_mnist": "MLP baseline",
                  "inh_mnist04": "INH, digits 0-4"}[experiment],
        "log_entry": "11.11.2024 -- 30.12.2024", "reported": reported or {},
        "figures": figures or {}, "evaluations": evaluations or [],
    }
    return record


def evaluation_record(kind: str, experiment: str, seed: int, result: dict) -> dict:
    return {"evaluation": kind, "experiment": experiment, "seed": seed,
            "config_hash": f"{experiment[:6]}cafe", "git_commit": "0123456789ab",
            "result": result}


def slot_update_result(seed: int) -> dict:
    """``revealed`` lowers both halves' accuracy; ``revealed+predicted`` keeps held-out."""
    def protocol(name: str, new_slots: int, update_after: float, held_after: float) -> dict:
        return {
            "seed": seed, "reference": name, "n_update": 5000, "n_held_out": 5000,
            "slots_before": INH_SLOTS[seed], "slots_after": INH_SLOTS[seed] + new_slots,
            "new_slots": new_slots, "labels_revealed": 40 + seed,
            "update": {"before": {"accuracy": 97.0 + seed, "unmatched": 40 + seed,
                                  "unmatched_pct": 0.8},
                       "after": {"accuracy": update_after, "unmatched": 0, "unmatched_pct": 0.0}},
            "held_out": {"before": {"accuracy": 97.2, "unmatched": 38, "unmatched_pct": 0.76},
                         "after": {"accuracy": held_after, "unmatched": 20 + seed,
                                   "unmatched_pct": 0.4}},
            "revealed": {"n": 40 + seed, "covered": 40 + seed, "accuracy_before": 20.0,
                         "accuracy_after": 100.0},
            # curves of different lengths in different seeds: dropped by the aggregation
            "curve": {"new_slots": list(range(new_slots + 1)),
                      "accuracy_update": [97.0] * (new_slots + 1),
                      "accuracy_held_out": [97.2] * (new_slots + 1)},
        }
    return {"revealed": protocol("revealed", 30 + seed, 95.0 + seed, 96.2),
            "revealed+predicted": protocol("revealed+predicted", 35 + seed, 98.0 + seed, 97.2)}


def ood_result(seed: int) -> dict:
    return {"in_distribution": {"n": 10000, "unmatched": 2.0 + seed, "mean_margin": 0.1},
            "sets": {"gaussian_noise": {"n": 10000, "unmatched": 100.0, "mean_margin": -0.1,
                                        "auroc": 99.0 + seed},
                     "cifar10_grey_crops": {"n": 10000, "unmatched": 40.0 + 2 * seed,
                                            "mean_margin": 0.01, "auroc": 80.0 + 2 * seed}}}


def attacks_result(seed: int, flagging: bool) -> dict:
    def scores(accuracy: float, flagged: float) -> dict:
        if not flagging:
            return {"accuracy": accuracy}
        return {"accuracy": accuracy, "flagged": flagged,
                "accuracy_with_abstention": accuracy + flagged,
                "wrong_unflagged": 100.0 - accuracy - flagged,
                "accuracy_unflagged": None if flagged == 100.0 else accuracy}
    return {"n": 1000, "steps": 40, "step_size": "2.5 * eps / steps", "seed": seed,
            "flagging": flagging, "clean": scores(97.0 + seed, 2.0),
            "attacks": [{"eps": eps, **scores(10.0 / (i + 1) + seed, 30.0 + i)}
                        for i, eps in enumerate((0.1, 0.2, 0.3))],
            "n_images": 1000}


def class_incremental_result(seed: int) -> dict:
    return {"seen": {"n": 5000, "unmatched": 3.0, "mean_margin": 0.1},
            "unseen": {"n": 5000, "unmatched": 64.0, "mean_margin": -0.05},
            "auroc": 91.5, "seen_accuracy": 99.1,
            "seen_classes": MNIST_CLASSES[:5], "unseen_classes": MNIST_CLASSES[5:]}


def write_json(path: Path, record: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def write_inh_results(root: Path, source: dict | None = None) -> tuple[list[Path], dict]:
    """Fake INH-stage results under ``root/results/mnist*``: inh_mnist (2 seeds: slots,
    slot_update, ood, attacks; the anchor 998 slots / 97.8 %), mlp_mnist (2 seeds:
    attacks; no reported number) and inh_mnist04 (1 seed: class_incremental)."""
    source = source or {"source": "torchvision"}
    paths = []
    inh_figures = {"slots": {"max_per_class": 12}, "slot_update": {},
                   "noise_gradients": {"layer": "net.inh", "units": [0, 1, 2, 3],
                                       "n_samples": 6}}
    for seed in (0, 1):
        run = root / "results" / "mnist" / "inh_mnist" / f"seed{seed}"
        paths.append(write_json(run / "metrics.json", mnist_record(
            "inh_mnist", seed, INH_ACCURACY[seed], source, slots=INH_SLOTS[seed],
            reported={"test_accuracy": 97.8, "slots": 998}, figures=inh_figures,
            evaluations=["slot_update", "ood", "attacks"])))
        write_json(run / "slot_update.json",
                   evaluation_record("slot_update", "inh_mnist", seed, slot_update_result(seed)))
        write_json(run / "ood.json", evaluation_record("ood", "inh_mnist", seed, ood_result(seed)))
        write_json(run / "attacks.json",
                   evaluation_record("attacks", "inh_mnist", seed, attacks_result(seed, True)))
        run = root / "results" / "mnist" / "mlp_mnist" / f"seed{seed}"
        paths.append(write_json(run / "metrics.json", mnist_record(
            "mlp_mnist", seed, MLP_ACCURACY[seed], source, evaluations=["attacks"])))
        write_json(run / "attacks.json",
                   evaluation_record("attacks", "mlp_mnist", seed, attacks_result(seed, False)))
    run = root / "results" / "mnist04" / "inh_mnist04" / "seed0"
    paths.append(write_json(run / "metrics.json", mnist_record(
        "inh_mnist04", 0, 99.1, source, slots=400, evaluations=["class_incremental"],
        classes=MNIST_CLASSES[:5])))
    write_json(run / "class_incremental.json", evaluation_record(
        "class_incremental", "inh_mnist04", 0, class_incremental_result(0)))
    figures = {"inh_mnist": {
        "slots": write_png(root / "results" / "mnist" / "inh_mnist_slots.png", (240, 200),
                           (90, 90, 90)),
        "slot_update": write_png(root / "results" / "mnist" / "inh_mnist_slot_update.png",
                                 (120, 100), (30, 90, 160)),
        "noise_gradients": write_png(root / "results" / "mnist" / "inh_mnist_noise_gradients.png",
                                     (240, 110), (150, 150, 150)),
    }}
    return paths, figures


@pytest.fixture
def inh_results(tmp_path: Path) -> tuple[list[Path], dict]:
    return write_inh_results(tmp_path)


def by_name(context: dict, name: str) -> dict:
    return next(e for e in context["experiments"] if e["name"] == name)


def test_inh_runs_carry_slots_and_compression_over_seeds(tmp_path, inh_results):
    paths, figures = inh_results
    context = build_context(paths, figures, tmp_path / "paper")
    inh, mlp = by_name(context, "inh_mnist"), by_name(context, "mlp_mnist")
    assert inh["is_inh"] and not mlp["is_inh"]
    assert inh["slots"]["mean"] == pytest.approx(1000.0)
    assert inh["slots"]["std"] == pytest.approx(14.142136, abs=1e-5)
    assert inh["compression"]["mean"] == pytest.approx((60.61 + 59.41) / 2)
    assert inh["reported_slots"] == 998.0 and inh["reported"] == 97.8
    assert inh["n_parameters_vary"] and inh["n_parameters"] == 784 * 1000 + 1
    assert mlp["slots"] is None and mlp["compression"] is None and mlp["reported"] is None
    assert [e["name"] for e in context["inh_experiments"]] == ["inh_mnist", "inh_mnist04"]
    assert [e["name"] for e in context["inh_table_experiments"]] == [
        "inh_mnist", "mlp_mnist", "inh_mnist04"]
    (anchor,) = context["anchors"]
    assert anchor["slots_difference"] == pytest.approx(2.0)
    assert anchor["within_slots"] is False and anchor["accuracy_reached"] is False
    assert inh["figures"] == {
        "slots": "../results/mnist/inh_mnist_slots.png",
        "slot_update": "../results/mnist/inh_mnist_slot_update.png",
        "noise_gradients": "../results/mnist/inh_mnist_noise_gradients.png",
    }
    assert inh["figure_spec"]["slot_update"]["protocols"] == ["revealed", "revealed+predicted"]
    assert [e["name"] for e in context["inh_figure_experiments"]] == ["inh_mnist"]
    assert context["main_figure_experiments"] == []


def test_evaluations_are_aggregated_over_seeds(tmp_path, inh_results):
    paths, figures = inh_results
    context = build_context(paths, figures, tmp_path / "paper")
    evaluations = by_name(context, "inh_mnist")["evaluations"]
    assert sorted(evaluations) == ["attacks", "ood", "slot_update"]

    revealed, predicted = evaluations["slot_update"]["protocols"]
    assert (revealed["name"], predicted["name"]) == ("revealed", "revealed+predicted")
    assert evaluations["slot_update"]["seeds"] == [0, 1]
    assert revealed["new_slots"]["mean"] == pytest.approx(30.5)
    assert revealed["new_slots"]["std"] == pytest.approx(0.707107, abs=1e-5)
    assert revealed["update_half"]["before"]["accuracy"]["mean"] == pytest.approx(97.5)
    assert revealed["update_half"]["after"]["accuracy"]["mean"] == pytest.approx(95.5)
    assert predicted["held_out"]["after"]["accuracy"]["std"] == 0.0
    assert revealed["held_out"]["after"]["unmatched"]["per_seed"] == [20, 21]

    ood = evaluations["ood"]
    assert ood["in_distribution"]["unmatched"]["mean"] == pytest.approx(2.5)
    assert [s["label"] for s in ood["sets"]] == ["Gaussian noise", "CIFAR-10 greyscale crops"]
    assert ood["sets"][1]["auroc"]["mean"] == pytest.approx(81.0)

    pgd = context["pgd"]
    assert [x["name"] for x in pgd["experiments"]] == ["inh_mnist", "mlp_mnist"]
    assert [x["flagging"] for x in pgd["experiments"]] == [True, False]
    assert [row["eps"] for row in pgd["rows"]] == [None, 0.1, 0.2, 0.3]
    inh_cell, mlp_cell = pgd["rows"][2]["cells"]
    assert inh_cell["accuracy"]["mean"] == pytest.approx(5.5)
    assert inh_cell["flagged"]["mean"] == pytest.approx(31.0)
    assert mlp_cell["flagged"] is None and mlp_cell["accuracy"]["mean"] == pytest.approx(5.5)

    (incremental,) = context["class_incremental_experiments"]
    summary = incremental["evaluations"]["class_incremental"]
    assert summary["n_seeds"] == 1 and summary["auroc"]["mean"] == 91.5
    assert summary["unseen_classes"] == MNIST_CLASSES[5:]


def test_slot_update_drops_are_listed(tmp_path, inh_results):
    paths, figures = inh_results
    context = build_context(paths, figures, tmp_path / "paper")
    drops = [(d["protocol"], d["half"]) for d in context["slot_update_drops"]]
    assert drops == [("revealed", "update half"), ("revealed", "held-out half")]
    assert context["slot_update_drops"][1]["change"] == pytest.approx(-1.0)


def test_missing_evaluation_files_are_simply_absent(tmp_path, inh_results):
    paths, figures = inh_results
    mnist = tmp_path / "results" / "mnist"
    (mnist / "inh_mnist" / "seed1" / "ood.json").unlink()
    for seed in (0, 1):
        (mnist / "inh_mnist" / f"seed{seed}" / "attacks.json").unlink()
    context = build_context(paths, figures, tmp_path / "paper")
    evaluations = by_name(context, "inh_mnist")["evaluations"]
    assert "attacks" not in evaluations
    assert evaluations["ood"]["seeds"] == [0] and evaluations["ood"]["n_seeds"] == 1
    assert evaluations["ood"]["in_distribution"]["unmatched"]["std"] == 0.0
    assert [x["name"] for x in context["pgd"]["experiments"]] == ["mlp_mnist"]
    render_paper(TEMPLATES, tmp_path / "generated", context)


def test_runs_without_any_evaluation_render_without_inh_tables(tmp_path, results):
    paths, figures = results
    context = build_context(paths, figures, tmp_path / "paper")
    assert context["inh_table_experiments"] == [] and context["pgd"]["experiments"] == []
    assert all(e["evaluations"] == {} and e["slots"] is None for e in context["experiments"])
    render_paper(TEMPLATES, tmp_path / "generated", context)
    assert "no results of the Incremental Neural Hashing stage" in (
        tmp_path / "generated" / "inh.tex").read_text()


@pytest.mark.parametrize("key, value, message", [
    ("config_hash", "ffffffffffff", "stale"),
    ("seed", 7, "misplaced"),
    ("evaluation", "attacks", "misplaced"),
])
def test_evaluation_file_of_another_run_is_rejected(tmp_path, inh_results, key, value, message):
    paths, figures = inh_results
    path = tmp_path / "results" / "mnist" / "inh_mnist" / "seed0" / "ood.json"
    record = json.loads(path.read_text())
    record[key] = value
    path.write_text(json.dumps(record))
    with pytest.raises(PaperInputError, match=message) as error:
        build_context(paths, figures, tmp_path / "paper")
    assert "\n" not in str(error.value)


def test_corrupt_evaluation_file_is_one_clear_line(tmp_path, inh_results):
    paths, figures = inh_results
    (tmp_path / "results" / "mnist" / "inh_mnist" / "seed1" / "slot_update.json").write_text("{")
    with pytest.raises(PaperInputError, match="not valid JSON"):
        build_context(paths, figures, tmp_path / "paper")


def test_aggregate_summarises_numbers_and_keeps_agreeing_values():
    merged = aggregate([
        {"x": 1, "name": "a", "flag": True, "curve": [1, 2], "rows": [{"v": 1.0}],
         "maybe": None},
        {"x": 3, "name": "a", "flag": False, "curve": [1, 2, 3], "rows": [{"v": 2.0}],
         "maybe": 4.0},
    ])
    assert merged["x"]["mean"] == 2.0 and merged["x"]["std"] == pytest.approx(1.414214, abs=1e-6)
    assert merged["x"]["n"] == 2 and merged["x"]["per_seed"] == [1, 3]
    assert merged["name"] == "a" and merged["flag"] is None and merged["curve"] is None
    assert merged["rows"][0]["v"]["mean"] == 1.5
    assert merged["maybe"]["mean"] == 4.0 and merged["maybe"]["n"] == 1
    with pytest.raises(PaperInputError, match="entries in different seeds"):
        aggregate([{"rows": [{"v": 1}]}, {"rows": [{"v": 1}, {"v": 2}]}])
    with pytest.raises(PaperInputError, match="different kinds"):
        aggregate([{"x": 1}, {"x": "one"}])


def test_format_stat_shows_spread_only_over_several_seeds():
    assert format_stat({"mean": 97.54, "std": 0.26, "n": 2}) == "$97.5 \\pm 0.3$"
    assert format_stat({"mean": 97.54, "std": 0.0, "n": 1}) == "97.5"
    assert format_stat({"mean": 1000.0, "std": 14.14, "n": 2}, count=True) == "$1\\,000 \\pm 14.1$"
    assert format_stat({"mean": 40.0, "std": 0.0, "n": 2}, count=True) == "40"
    assert format_stat({"mean": None, "std": None, "n": 0}) == "--"
    assert format_stat(None) == "--"


def test_unknown_figure_kind_is_rejected(tmp_path, inh_results):
    paths, figures = inh_results
    figures["inh_mnist"]["heatmap"] = figures["inh_mnist"]["slots"]
    with pytest.raises(PaperInputError, match="unknown figure kind.*heatmap"):
        build_context(paths, figures, tmp_path / "paper")


def test_inh_tables_show_slots_anchor_and_drops(tmp_path, inh_results):
    paths, figures = inh_results
    context = build_context(paths, figures, tmp_path / "paper")
    render_paper(TEMPLATES, tmp_path / "generated", context)
    inh = (tmp_path / "generated" / "inh.tex").read_text()
    row = next(line for line in inh.splitlines() if "$1\\,000 \\pm 14.1$" in line)
    assert "$60.0 \\pm 0.8$" in row and "$97.5 \\pm 0.7$" in row  # compression, accuracy
    assert "998" in inh and "97.8" in inh  # the anchor, from `reported`
    assert "\\textbf{drops} after the update in 2\ncases" in inh
    assert "held-out half:\n    from $97.2 \\pm 0.0$ to $96.2 \\pm 0.0$~\\% ($-1.0$ points)" in inh
    assert "falls by $1.0$ points\nwhen the new thresholds only respect the revealed" in inh
    assert "\\label{tab:inh-slot-update}" in inh and "\\label{tab:inh-pgd}" in inh
    assert "Gaussian noise" in inh and "unseen classes 5, 6, 7, 8, 9" in inh
    # INH models have their own table, not a row in the overview of the first models.
    results_table = (tmp_path / "generated" / "results_table.tex").read_text()
    assert "slots" not in results_table.split("\\midrule", 1)[1]
    discussion = (tmp_path / "generated" / "inh_discussion.tex").read_text()
    assert "2 more" in discussion and "\\textbf{not met}" in discussion
    figures_tex = (tmp_path / "generated" / "figures.tex").read_text()
    assert "\\label{fig:InhMnist-slots}" in figures_tex
    assert "one panel per protocol:\n    \\texttt{revealed} (new thresholds" in figures_tex


def test_paper_builds_with_inh_results(tmp_path, latexmk):
    paths, figures = write_results(tmp_path)
    inh_paths, inh_figures = write_inh_results(tmp_path)
    context = build_context(paths + inh_paths, figures | inh_figures, tmp_path / "paper")
    text = build_pdf(latexmk, tmp_path, context)
    assert "Incremental Neural Hashing" in text
    assert "97.5" in text and "998" in text and "97.8" in text and "98.2" in text
    assert "revealed+predicted" in text and "AUROC" in text


# -- Families of stages and the log's findings ---------------------------------------------
def write_family_results(root: Path) -> tuple[list[Path], dict]:
    """The fake results with conj_disj in family 'disjunction', claimed less accurate than
    directional (91.0 vs 94.1 here, seed spread about 1.6: reproduced)."""
    paths, figures = write_results(root)
    for path in paths:
        record = json.loads(path.read_text())
        if record["experiment"] == "conj_disj":
            record["spec"].update(family="disjunction", family_title="Disjunction models",
                                  finding={"text": "less accurate than Directional",
                                           "relation": "lower", "than": "directional"})
        path.write_text(json.dumps(record))
    return paths, figures


def test_family_tables_test_the_findings(tmp_path):
    paths, figures = write_family_results(tmp_path)
    context = build_context(paths, figures, tmp_path / "paper")
    assert [e["name"] for e in context["overview_experiments"]] == ["directional"]
    (table,) = context["families"]
    assert table["title"] == "Disjunction models"
    assert [(r["experiment"]["name"], r["reference"]) for r in table["rows"]] == [
        ("directional", True), ("conj_disj", False)]
    finding = table["rows"][1]["experiment"]["finding_result"]
    assert finding["difference"] == pytest.approx(-3.1)
    assert finding["verdict"] == "reproduced"
    assert [e["name"] for e in context["main_figure_experiments"]] == ["directional"]


def test_family_table_renders_time_ratios_and_by_eye_findings(tmp_path):
    paths, figures = write_family_results(tmp_path)
    for path in paths:
        record = json.loads(path.read_text())
        if record["experiment"] == "directional":
            record["spec"].update(family="by_eye", family_title="Pictures",
                                  finding={"text": "gradients look cleaner"})
        path.write_text(json.dumps(record))
    context = build_context(paths, figures, tmp_path / "paper")
    by_name = {e["name"]: e for e in context["experiments"]}
    ratio = by_name["conj_disj"]["finding_result"]["time_ratio"]
    assert ratio == pytest.approx(by_name["conj_disj"]["wall_time_mean"]
                                  / by_name["directional"]["wall_time_mean"])
    render_paper(TEMPLATES, tmp_path / "generated", context)
    tex = (tmp_path / "generated" / "families.tex").read_text()
    assert f"$\\times{ratio:.1f}$" in tex and "by eye" in tex


def test_paper_prints_the_family_table(tmp_path, latexmk):
    paths, figures = with_unit_and_kernel_figures(tmp_path, *write_family_results(tmp_path))
    text = build_pdf(latexmk, tmp_path, build_context(paths, figures, tmp_path / "paper"))
    assert "Disjunction models" in text and "less accurate" in text
    assert "reproduced" in text and "No stage of this family was run" in text
    words = " ".join(text.split())
    assert "every unit (all 120)" in words and "of Directional (120 units)" in words
    assert "scatters the learned perspective parameters" in words
    # Without CUB results the CUB section says so instead of referring to absent tables.
    assert "No model of this stage was run for this document" in words


def test_run_tables_and_model_arguments_for_the_prose(tmp_path):
    paths, figures = write_family_results(tmp_path)
    for path in paths:
        record = json.loads(path.read_text())
        if record["experiment"] == "conj_disj":
            record["spec"]["model_args"] = {"per_class": 10, "cluster": 0.8,
                                            "push_epochs": [10, 20], "backbone": "resnet34",
                                            "options": {"nested": 1}}
        path.write_text(json.dumps(record))
    context = build_context(paths, figures, tmp_path / "paper")
    render_paper(TEMPLATES, tmp_path / "generated", context)
    macros = (tmp_path / "generated" / "macros.tex").read_text()
    assert "\\csname modelarg@conj_disj@per_class\\endcsname{10}" in macros
    assert "\\csname modelarg@conj_disj@cluster\\endcsname{0.8}" in macros
    assert "\\csname modelarg@conj_disj@push_epochs\\endcsname{10, 20}" in macros
    assert "modelarg@conj_disj@options" not in macros  # only scalars and lists
    assert "\\csname runcount@conj_disj@train_images\\endcsname{" in macros
    families = (tmp_path / "generated" / "families.tex").read_text()
    run_table = families.split("runtable@disjunction")[1].split("\\end{table}")[0]
    conj_disj = next(e for e in context["experiments"] if e["name"] == "conj_disj")
    assert "Conjunction" in run_table and "Directional" not in run_table  # references left out
    assert format_seconds(conj_disj["wall_time_mean"]) in run_table
    assert "& 90.0 & $" in run_table  # the log's number next to ours
    assert latex_escape(conj_disj["device_names"][0]) in run_table  # x86\\_64 CPU


# -- Figures that describe themselves: every unit on noise, kernel views -------------------
def write_png_with_info(path: Path, info: dict | None) -> Path:
    """A PNG carrying ``info`` in its whitebox text chunk, as the figure renderers write it."""
    from PIL.PngImagePlugin import PngInfo

    path.parent.mkdir(parents=True, exist_ok=True)
    chunk = PngInfo()
    if info is not None:
        chunk.add_text("whitebox", json.dumps(info))
    Image.new("RGB", (300, 120), (90, 90, 90)).save(path, pnginfo=chunk)
    return path


def with_unit_and_kernel_figures(root: Path, paths: list[Path], figures: dict,
                                 kernel_info: bool = True) -> tuple[list[Path], dict]:
    """conj_disj also gets a unit_grid figure (compared with directional) and kernel views."""
    for path in paths:
        record = json.loads(path.read_text())
        if record["experiment"] == "conj_disj":
            record["spec"]["figures"].update(
                unit_grid={"layer": "net.conv2", "compare": "directional", "noise_seed": 0},
                kernel_views={"layer": "net.conv1", "n_kernels": 2})
            path.write_text(json.dumps(record))
    rows = [{"experiment": name, "title": TITLES[name], "layer": "net.conv2", "n_units": 120,
             "units_per_class": 60, "classes": ["airplane", "automobile"]}
            for name in ("conj_disj", "directional")]
    kernels = {"layer": "net.conv1", "layer_type": "PerspectiveConv2d", "out_channels": 12,
               "in_channels": 3, "kernels": [7, 2], "views": ["identity", "p_1"],
               "perspective": True, "rgb": True}
    results = root / "results" / "cifar2"
    figures["conj_disj"] = figures["conj_disj"] | {
        "unit_grid": write_png_with_info(results / "aug_module.png", {"noise_seed": 0, "rows": rows}),
        "kernel_views": write_png_with_info(results / "conj_disj_kernel_views.png",
                                            kernels if kernel_info else None)}
    return paths, figures


def test_unit_grid_and_kernel_views_captions(tmp_path):
    paths, figures = with_unit_and_kernel_figures(tmp_path, *write_family_results(tmp_path))
    context = build_context(paths, figures, tmp_path / "paper")
    conj_disj = next(e for e in context["experiments"] if e["name"] == "conj_disj")
    grid = conj_disj["figure_spec"]["unit_grid"]
    assert (grid["compare_title"], grid["compare_seed"], grid["compare_layer"]) == (
        "Directional", 0, "net.conv2")
    assert conj_disj["figure_info"]["kernel_views"]["kernels"] == [7, 2]
    assert list(conj_disj["figures"])[-2:] == ["unit_grid", "kernel_views"]
    render_paper(TEMPLATES, tmp_path / "generated", context)
    tex = (tmp_path / "generated" / "figures.tex").read_text()
    macro = conj_disj["macro"]
    assert f"\\label{{fig:{macro}-unit_grid}}" in tex and f"\\label{{fig:{macro}-kernel_views}}" in tex
    refs = tex.split("stagefigurerefs@disjunction")[1].split("\n")[1]
    assert f"\\ref{{fig:{macro}-unit_grid}}, \\ref{{fig:{macro}-kernel_views}}" in refs
    assert "The second row shows the same for the first-seed model (seed 0) of\n    Directional" in tex
    assert "(channels 7, 2)" in tex and "p\\_1" in tex and "scatters the learned perspective" in tex


def test_kernel_views_caption_without_figure_info_stays_general(tmp_path):
    paths, figures = with_unit_and_kernel_figures(tmp_path, *write_family_results(tmp_path),
                                                  kernel_info=False)
    context = build_context(paths, figures, tmp_path / "paper")
    render_paper(TEMPLATES, tmp_path / "generated", context)
    tex = (tmp_path / "generated" / "figures.tex").read_text()
    assert "For a layer that learns perspective parameters" in tex
    assert "otherwise as the mean" in tex


def test_unit_grid_compare_without_metrics_is_one_line(tmp_path):
    paths, figures = with_unit_and_kernel_figures(tmp_path, *write_results(tmp_path))
    conj_disj_only = [p for p in paths if "conj_disj" in str(p)]
    with pytest.raises(PaperInputError, match="compares with 'directional', whose metrics were not"):
        build_context(conj_disj_only, {"conj_disj": figures["conj_disj"]}, tmp_path / "paper")


def test_a_figure_kind_without_a_template_block_gets_its_declared_caption(tmp_path, results,
                                                                         monkeypatch):
    """A new kind needs no template edit: the paper places it with its declaration's caption."""
    import whitebox.paper.context as context_module
    from whitebox.figures.kinds import FIGURE_KINDS, FigureKind

    kinds = {**FIGURE_KINDS, "histogram": FigureKind(
        render="whitebox.figures.grids:render_gradients", category="Histograms",
        caption="A histogram of every weight of the first layer.")}
    monkeypatch.setattr(context_module, "FIGURE_KINDS", kinds)
    paths, figures = results
    figures["directional"]["histogram"] = write_png(tmp_path / "histogram.png", (100, 60), (9, 9, 9))
    context = build_context(paths, figures, tmp_path / "paper")
    directional = next(e for e in context["experiments"] if e["name"] == "directional")
    assert directional["generic_figures"] == [{"kind": "histogram", "path": "../histogram.png",
                                               "caption": kinds["histogram"].caption}]
    render_paper(TEMPLATES, tmp_path / "generated", context)
    tex = (tmp_path / "generated" / "figures.tex").read_text()
    assert "Directional: A histogram of every weight of the first layer." in tex
    assert "\\label{fig:" in tex and "-histogram}" in tex
