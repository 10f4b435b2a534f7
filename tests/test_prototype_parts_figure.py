"""The prototype_parts figure of prototype networks on CUB-200: where each part of the best
prototypes of the predicted class matches, and the training patch it was pushed to; the
computation, the renderer, the CLI command and the paper caption."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from tests.conftest import one_error_line, png_info
from tests.test_paper import (
    TEMPLATES,
    build_context,
    metrics_record,
    write_png,
    write_png_with_info,
)
from whitebox.cli import main
from whitebox.data import Dataset, Split
from whitebox.data.dataset import save_dataset
from whitebox.explain.prototypes import (
    MOVED_RMS,
    cell_box,
    patch_box,
    prototype_part_matches,
    push_patch_distances,
)
from whitebox.figures.prototypes import save_prototype_parts, short_class_name
from whitebox.io import save_torch
from whitebox.models import build_classifier
from whitebox.paper import render_paper

CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]
MODEL_ARGS = {"per_class": 2, "parts": 3, "dim": 16}
MEAN, STD = [0.5] * 3, [0.25] * 3


def prototype_classifier(seed: int = 0) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return build_classifier("prototype_network", n_classes=3, mean=MEAN, std=STD, image_size=64,
                            **MODEL_ARGS)


def random_images(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def push(model: torch.nn.Sequential, train_images: torch.Tensor, train_labels: torch.Tensor) -> None:
    """Push every part onto its nearest training latent vector of its class (as training does)."""
    net = model.net
    with torch.no_grad():
        net.prototypes.begin_push()
        net.prototypes.observe(net.latent(model.normalize(train_images)), train_labels, 0)
        net.prototypes.end_push()






@pytest.fixture(scope="module")
def model() -> torch.nn.Sequential:
    return prototype_classifier()


# -- prototype_part_matches -----------------------------------------------------------------
def test_matches_are_the_best_prototypes_of_the_predicted_class(model):
    images = random_images(4, seed=1)
    matches = prototype_part_matches(model, images, n_prototypes=2)
    layer = model.net.prototypes
    assert model.training  # the mode it came in is restored
    with torch.no_grad():
        model.eval()
        logits = model(images)
        z = model.net.latent(model.normalize(images))
        scores = layer(z)
        model.train()
    h, w = z.shape[-2:]
    assert matches.map_size == (h, w) and matches.image_size == (64, 64)
    assert matches.prototypes.shape == (4, 2) and matches.scores.shape == (4, 2)
    assert matches.locations.shape == (4, 2, 3, 2) and matches.locations.dtype == torch.long
    assert matches.push_source.shape == (4, 2, 3, 3) and matches.parts == 3
    torch.testing.assert_close(matches.predicted, logits.argmax(dim=1))
    for n in range(4):
        own = (layer.prototype_class == matches.predicted[n]).nonzero().flatten().tolist()
        assert sorted(matches.prototypes[n].tolist()) == own  # per_class = 2: both, best first
        torch.testing.assert_close(matches.scores[n], scores[n, matches.prototypes[n]])
        assert matches.scores[n, 0] >= matches.scores[n, 1]
    ys, xs = matches.locations[..., 0], matches.locations[..., 1]
    assert ((ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)).all()
    torch.testing.assert_close(matches.locations,
                               layer.part_locations(z)[torch.arange(4)[:, None], matches.prototypes])
    assert not matches.pushed.any() and (matches.push_source == -1).all()


def test_matches_take_at_most_the_class_prototypes_and_report_the_push(model):
    images = random_images(3, seed=2)
    assert prototype_part_matches(model, images, n_prototypes=9).prototypes.shape == (3, 2)
    assert prototype_part_matches(model, images, n_prototypes=1).prototypes.shape == (3, 1)
    pushed = prototype_classifier(seed=3).eval()
    train = random_images(6, seed=4)
    push(pushed, train, torch.tensor([0, 1, 2, 0, 1, 2]))
    matches = prototype_part_matches(pushed, images, n_prototypes=2)
    assert matches.pushed.all()
    source = matches.push_source
    assert ((source[..., 0] >= 0) & (source[..., 0] < 6)).all()
    assert ((source[..., 1:] >= 0) & (source[..., 1:] < torch.tensor(matches.map_size))).all()
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    assert (labels[source[..., 0]] == matches.predicted[:, None, None]).all()  # own-class patches
    with pytest.raises(ValueError, match="one PartPrototypes layer"):
        prototype_part_matches(torch.nn.Conv2d(3, 3, 1), images, 1)
    with pytest.raises(ValueError, match="n_prototypes must be >= 1"):
        prototype_part_matches(model, images, 0)


def test_push_distances_tell_whether_a_part_still_is_its_patch():
    model = prototype_classifier(seed=10).eval()
    train = (random_images(6, seed=11) * 255).to(torch.uint8)
    images = random_images(2, seed=12)
    unpushed = prototype_part_matches(model, images, 2)
    assert push_patch_distances(model, train, unpushed).isnan().all()
    push(model, train.float() / 255, torch.tensor([0, 1, 2, 0, 1, 2]))
    matches = prototype_part_matches(model, images, 2)
    distances = push_patch_distances(model, train, matches, batch_size=2)
    assert distances.shape == (2, 2, 3) and (distances < 1e-5).all()
    with torch.no_grad():
        model.net.prototypes.parts_vectors[:, 0] += 0.3  # trained after the push: first parts move
    model.train()
    moved = push_patch_distances(model, train, matches)
    assert model.training
    assert (moved[..., 0] > MOVED_RMS).all() and (moved[..., 1:] < 1e-5).all()


def test_cell_and_patch_boxes():
    assert cell_box((1, 2), (7, 7), (224, 224)) == (32.0, 64.0, 32.0, 32.0)
    assert cell_box((0, 0), (7, 7), (224, 224), scale=2.0) == (0.0, 0.0, 48.0, 48.0)  # clipped
    assert patch_box((3, 3), (7, 7), (224, 224), context=2.0) == (80, 80, 64, 64)
    assert patch_box((6, 6), (7, 7), (224, 224), context=2.0) == (160, 160, 64, 64)  # shifted in
    assert patch_box((0, 3), (7, 7), (224, 224), context=2.0) == (0, 80, 64, 64)
    assert patch_box((1, 0), (2, 2), (64, 64), context=1.0) == (32, 0, 32, 32)
    assert patch_box((1, 0), (2, 2), (64, 64), context=3.0) == (0, 0, 64, 64)  # at most the image


# -- renderer -------------------------------------------------------------------------------
def test_short_class_names():
    assert short_class_name("001.Black_footed_Albatross") == "Black footed Albatross"
    assert short_class_name("airplane") == "airplane"


def test_renderer_writes_a_png_describing_itself(model, tmp_path):
    images = random_images(2, seed=5)
    matches = prototype_part_matches(model, images, n_prototypes=2)
    info = save_prototype_parts(images, [0, 2], matches, CLASSES, tmp_path / "parts.png",
                                train_images=None, title="ProtoPNet", info={"experiment": "x"})
    stored = png_info(tmp_path / "parts.png")
    assert stored == info
    assert (stored["n_images"], stored["n_prototypes"], stored["parts"]) == (2, 2, 3)
    assert stored["pushed"] is False and stored["pushed_parts"] == 0 and stored["shown_parts"] == 12
    assert stored["experiment"] == "x" and stored["map_size"] == list(matches.map_size)
    assert [row["true"] for row in stored["rows"]] == [CLASSES[0], CLASSES[2]]
    assert [row["prototypes"] for row in stored["rows"]] == matches.prototypes.tolist()

    pushed = prototype_classifier(seed=6).eval()
    train = (random_images(6, seed=7) * 255).to(torch.uint8)
    push(pushed, train.float() / 255, torch.tensor([0, 1, 2, 0, 1, 2]))
    matches = prototype_part_matches(pushed, images, n_prototypes=1)
    save_prototype_parts(images, [1, 1], matches, CLASSES, tmp_path / "pushed.png",
                         train_images=train)
    stored = png_info(tmp_path / "pushed.png")
    assert stored["pushed"] is True and stored["pushed_parts"] == 6 and stored["n_prototypes"] == 1
    assert stored["moved_parts"] is None  # not checked
    distances = torch.zeros(2, 1, 3)
    distances[0, 0, 1] = 0.5
    save_prototype_parts(images, [1, 1], matches, CLASSES, tmp_path / "pushed.png",
                         train_images=train, push_distances=distances)
    assert png_info(tmp_path / "pushed.png")["moved_parts"] == 1
    with pytest.raises(ValueError, match="only 2 training images"):
        save_prototype_parts(images, [1, 1], matches, CLASSES, tmp_path / "bad.png",
                             train_images=train[:2])
    with pytest.raises(ValueError, match="3 labels for 2 images"):
        save_prototype_parts(images, [1, 1, 1], matches, CLASSES, tmp_path / "bad.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parts.png", "pushed.png"]


# -- command line ---------------------------------------------------------------------------
def save_model(path: Path, model: torch.nn.Module, name: str, model_name: str, model_args: dict,
               image_size: int) -> Path:
    """``model`` saved the way training saves model.pt."""
    spec = {"name": name, "title": name.replace("_", " ").title(), "model": model_name,
            "model_args": model_args, "classes": None}
    save_torch({"state_dict": model.state_dict(), "spec": spec, "classes": CLASSES, "mean": MEAN,
                "std": STD, "image_size": image_size}, path)
    return path


def prepared_dataset(path: Path) -> Dataset:
    generator = torch.Generator().manual_seed(8)

    def split(n: int) -> Split:
        images = torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8, generator=generator)
        return Split(images, torch.arange(n, dtype=torch.int64) % 3)

    dataset = Dataset("cub200", list(CLASSES), split(9), split(6))
    save_dataset(dataset, path, {"source": "synthetic"})
    return dataset


def test_prototype_parts_command_end_to_end(tmp_path):
    data = prepared_dataset(tmp_path / "tensors.pt")
    model = prototype_classifier(seed=9).eval()
    push(model, data.train.images.float() / 255, data.train.labels)
    path = save_model(tmp_path / "run" / "model.pt", model, "cub_flexparts", "prototype_network",
                      MODEL_ARGS, 64)
    out = tmp_path / "results" / "cub200" / "cub_flexparts_prototype_parts.png"
    assert main(["figure", "prototype_parts", "--model", str(path), "--data", str(tmp_path / "tensors.pt"),
                 "--n-images", "3", "--n-prototypes", "2", "--out", str(out)]) == 0
    info = png_info(out)
    assert (info["n_images"], info["n_prototypes"], info["parts"], info["pushed"]) == (3, 2, 3, True)
    assert info["experiment"] == "cub_flexparts" and info["requested_prototypes"] == 2
    assert info["moved_parts"] == 0 and info["pushed_parts"] == info["shown_parts"] == 18
    assert [row["true"] for row in info["rows"]] == [CLASSES[i] for i in data.test.labels[:3]]
    expected = prototype_part_matches(model, data.test.images[:3].float() / 255, 2)
    assert [row["prototypes"] for row in info["rows"]] == expected.prototypes.tolist()


def test_prototype_parts_of_another_model_is_one_line(tmp_path, capsys):
    prepared_dataset(tmp_path / "tensors.pt")
    torch.manual_seed(0)
    plain = build_classifier("directional", 3, MEAN, STD, image_size=32)
    path = save_model(tmp_path / "model.pt", plain, "directional", "directional", {}, 32)
    out = tmp_path / "p.png"
    assert main(["figure", "prototype_parts", "--model", str(path), "--data", str(tmp_path / "tensors.pt"),
                 "--out", str(out)]) == 1
    assert one_error_line(capsys).endswith(
        "the prototype_parts figure needs a prototype network (model: prototype_network); "
        "experiment 'directional' uses 'directional'")
    assert main(["figure", "prototype_parts", "--model", str(path), "--data", str(tmp_path / "tensors.pt"),
                 "--n-prototypes", "0", "--out", str(out)]) == 1
    assert "n_prototypes: 0 is less than the minimum of 1" in one_error_line(capsys)
    assert not out.exists()


# -- paper ----------------------------------------------------------------------------------
PARTS_INFO = {"n_images": 4, "n_prototypes": 3, "parts": 9, "pushed": True, "pushed_parts": 108,
              "shown_parts": 108, "moved_parts": 0, "map_size": [7, 7], "image_size": [224, 224],
              "box_scale": 1.0, "patch_context": 2.0}


def write_cub_results(root: Path, parts_info: dict | None) -> tuple[list[Path], dict]:
    """A CIFAR stage with gradients (Results section) and a CUB prototype network in the cub
    family with gradients and prototype_parts (CUB section)."""
    paths, figures = [], {}
    source = {"source": "torchvision"}
    for name, dataset, base in (("conj_disj", "cifar2", "cifar10"),
                                ("cub_flexparts", "cub200", "cub200")):
        record = metrics_record("conj_disj", 0, 80.0, source)
        record["experiment"] = record["spec"]["name"] = name
        record["dataset"] = record["spec"]["dataset"] = dataset
        record["spec"]["base_dataset"] = base
        record["spec"]["figures"] = {"gradients": {"n_images": 8}}
        if name == "cub_flexparts":
            record["spec"].update(title="Flexible-part prototypes", family="cub",
                                  family_title="Prototype networks on CUB-200-2011 birds",
                                  model="prototype_network", model_args={"parts": 9})
            record["spec"]["figures"]["prototype_parts"] = {"n_images": 4, "n_prototypes": 3}
        path = root / "results" / dataset / name / "seed0" / "metrics.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
        paths.append(path)
        figures[name] = {"gradients": write_png(root / "results" / dataset / f"{name}_gradients.png",
                                                (300, 80), (200, 120, 40))}
    figures["cub_flexparts"]["prototype_parts"] = write_png_with_info(
        root / "results" / "cub200" / "cub_flexparts_prototype_parts.png", parts_info)
    return paths, figures


def command_body(tex: str, start: str) -> str:
    """The text of a generated ``\\newcommand``/``\\def`` from ``start`` to the next one."""
    body = tex.split(start, 1)[1]
    return re.split(r"\n\\newcommand|\n\\expandafter\\def", body, maxsplit=1)[0]


def test_cub_figures_go_to_their_own_section_with_the_caption(tmp_path):
    context = build_context(*write_cub_results(tmp_path, PARTS_INFO), tmp_path / "paper")
    assert [e["name"] for e in context["cub_figure_experiments"]] == ["cub_flexparts"]
    assert [e["name"] for e in context["main_figure_experiments"]] == ["conj_disj"]
    cub = context["cub_figure_experiments"][0]
    assert cub["figure_info"]["prototype_parts"]["parts"] == 9
    render_paper(TEMPLATES, tmp_path / "generated", context)
    tex = (tmp_path / "generated" / "figures.tex").read_text()
    macro = cub["macro"]
    cub_section = command_body(tex, "\\newcommand{\\cubfigures}")
    main_section = command_body(tex, "\\newcommand{\\mainfigures}")
    family_section = command_body(tex, "stagefigures@cub\\endcsname")
    for kind in ("prototype_parts", "gradients"):
        assert tex.count(f"\\label{{fig:{macro}-{kind}}}") == 1
    assert macro not in main_section and macro not in family_section
    # Gradient grids of every stage are together in an appendix (the gradient comparison
    # figures show all stages in the main text); the prototype parts stay with CUB's figures.
    assert f"\\label{{fig:{macro}-prototype_parts}}" in cub_section
    gradients = command_body(tex, "\\newcommand{\\stagegradientfigures}")
    assert f"\\label{{fig:{macro}-gradients}}" in gradients
    assert "conj" in gradients.lower()
    refs = command_body(tex, "\\newcommand{\\cubfigurerefs}")
    assert f"\\ref{{fig:{macro}-gradients}}, \\ref{{fig:{macro}-prototype_parts}}" in refs
    assert f"\\ref{{fig:{macro}-prototype_parts}}" in command_body(tex, "stagefigurerefs@cub")
    words = " ".join(cub_section.split())
    assert "in the first 4 test images" in words
    assert "the 3 prototypes of the predicted class with the highest prototype scores" in words
    assert "(in that order blue, orange, green)" in words
    assert "$7 \\times 7$ cells, so a cell covers $32 \\times 32$ pixels" in words
    assert "one tile per part (9 parts per prototype)" in words
    assert "2 times the cell's size" in words
    assert "Every part shown was pushed and still equals the latent vector of its patch." in words
    assert "trained further" not in words


@pytest.mark.parametrize(("info", "says"), [
    ({**PARTS_INFO, "parts": 1, "pushed": False, "pushed_parts": 0, "shown_parts": 12},
     ["one tile (the prototype has one part, as in ProtoPNet)", "were never pushed"]),
    ({**PARTS_INFO, "pushed": False, "pushed_parts": 100},
     ["(8 of the 108 parts shown)"]),
    ({**PARTS_INFO, "moved_parts": 5},
     ["Every part shown was pushed.", "5 of the 108 pushed parts shown were trained further"]),
    (None, ["A grey tile (``not pushed'') marks a part that was never pushed.",
            "one tile per part (9 parts per prototype)"]),
])
def test_prototype_parts_caption_follows_the_figure(tmp_path, info, says):
    context = build_context(*write_cub_results(tmp_path, info), tmp_path / "paper")
    render_paper(TEMPLATES, tmp_path / "generated", context)
    tex = (tmp_path / "generated" / "figures.tex").read_text()
    words = " ".join(command_body(tex, "\\newcommand{\\cubfigures}").split())
    for text in says:
        assert text in words


def test_no_cub_experiment_means_no_cub_figures(tmp_path):
    paths, figures = write_cub_results(tmp_path, PARTS_INFO)
    context = build_context(paths[:1], {"conj_disj": figures["conj_disj"]}, tmp_path / "paper")
    assert context["cub_figure_experiments"] == []
    render_paper(TEMPLATES, tmp_path / "generated", context)
    tex = (tmp_path / "generated" / "figures.tex").read_text()
    assert "\\newcommand{\\cubfigures}{%\n}" in tex and "\\newcommand{\\cubfigurerefs}{--}" in tex


def test_bagnet_cells_are_their_exact_receptive_fields():
    from whitebox.explain.prototypes import cell_box, patch_box

    # BagNet-33 at 224 px: a 24x24 map, cell (y, x) sees pixels 8y .. 8y+32 (33 wide).
    assert cell_box((23, 0), (24, 24), (224, 224), geometry=(8, 33)) == (184.0, 0.0, 33.0, 33.0)
    assert cell_box((2, 5), (24, 24), (224, 224), geometry=(8, 33)) == (16.0, 40.0, 33.0, 33.0)
    assert patch_box((23, 23), (24, 24), (224, 224), geometry=(8, 33)) == (184, 184, 33, 33)
    # Without geometry the cells tile the image evenly (ResNet).
    assert cell_box((0, 6), (7, 7), (224, 224)) == (0.0, 192.0, 32.0, 32.0)


def test_matches_carry_the_bagnet_geometry():
    from whitebox.explain.prototypes import prototype_part_matches
    from whitebox.models import build_classifier

    torch.manual_seed(0)
    model = build_classifier("prototype_network", n_classes=2, mean=[0.5] * 3, std=[0.25] * 3,
                             image_size=64, backbone="bagnet33", per_class=1, parts=2, dim=8)
    matches = prototype_part_matches(model, torch.rand(1, 3, 64, 64), n_prototypes=1)
    assert matches.cell_geometry == (8, 33) and matches.map_size == (4, 4)
