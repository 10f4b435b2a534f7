"""Every figure kind, declared once: what draws it, which files it reads, its options.

The workflow makes one rule per kind from this table (rule name = kind, wildcard constraint =
the file names config gives that kind), the config schema takes each kind's options from
it, the CLI makes one subcommand per kind (``whitebox figure noise_gradients``) with one
flag per option, and the report and the paper take its caption. A new kind is a
renderer function (``render(job: FigureJob)``, see ``whitebox.figures.job``), an entry
here, and its use in config.yaml.

Pure Python (no torch): the Snakefile reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Inputs a figure may read besides its experiment's first-seed model.
DATA = "data"  # the prepared tensors of the experiment's dataset
COMPARE = "compare"  # the first-seed model of the experiment named by the ``compare`` option
SLOT_UPDATE = "slot_update"  # the first seed's slot_update.json (an evaluation kind)
NO_MODEL = "no_model"  # the figure does not read the model itself

UNITS = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1}


@dataclass(frozen=True)
class FigureKind:
    """One kind of figure: ``render`` is ``module:function``, ``inputs`` what it reads,
    ``options`` the JSON Schema properties of its config entry (``file`` is added for all)."""

    render: str
    category: str  # the Snakemake report's category
    caption: str  # one paragraph: the report's caption, and the paper's for kinds it has no own block for
    inputs: tuple[str, ...] = ()
    options: dict = field(default_factory=dict)
    required: tuple[str, ...] = ()

    def needs_model(self) -> bool:
        return NO_MODEL not in self.inputs


FIGURE_KINDS: dict[str, FigureKind] = {
    # Figures of any model.
    "gradients": FigureKind(
        render="whitebox.figures.grids:render_gradients", category="Input gradients",
        caption="The first test images and, for every class, the input-space gradient of that "
                "class's logit, rescaled per image to RGB.",
        inputs=(DATA,), options={"n_images": {"type": "integer", "minimum": 1, "default": 60}}),
    "filters": FigureKind(
        render="whitebox.figures.grids:render_filters", category="First-layer filters",
        caption="First-layer convolution filters, each rescaled to RGB; consecutive groups (e.g. "
                "the five features of one conjunction) are separated by a gap.",
        options={"layer": {"type": "string", "default": "conv1"},
                 "group_size": {"type": "integer", "minimum": 1, "default": 1}}),
    # Figures of an INH model: its slots, the slot-update curve.
    "slots": FigureKind(
        render="whitebox.figures.slots:render_slots", category="INH slots",
        caption="Incremental Neural Hashing slots (unit vectors over pixels) shown as images, one "
                "row per class with the number of slots the class keeps.",
        options={"max_per_class": {"type": "integer", "minimum": 1, "default": 12}}),
    "slot_update": FigureKind(
        render="whitebox.figures.curves:render_slot_update", category="INH slot update",
        caption="Continual slot update: test accuracy on the update half and on the held-out half "
                "of the test set as the new slots covering the unmatched examples are added in "
                "greedy order, one panel per protocol.",
        inputs=(SLOT_UPDATE, NO_MODEL),
        options={"protocols": {"type": "array", "minItems": 1, "uniqueItems": True,
                               "items": {"enum": ["revealed", "revealed+predicted"]},
                               "default": ["revealed", "revealed+predicted"],
                               "description": "the protocols of slot_update.json drawn, a panel each"}}),
    # The views of a layer's units and kernels.
    "noise_gradients": FigureKind(
        render="whitebox.figures.slots:render_noise_gradients", category="Gradients on noise",
        caption="Input gradients of chosen units on Gaussian-noise images: what a unit responds "
                "to, independent of any particular test image.",
        options={"layer": {"type": "string"}, "units": {**UNITS, "default": [0, 1, 2, 3]},
                 "layers": {"type": "object", "minProperties": 1, "additionalProperties": UNITS,
                            "description": "several layers: layer -> units (instead of layer)"},
                 "n_samples": {"type": "integer", "minimum": 1, "default": 6}}),
    "unit_grid": FigureKind(
        render="whitebox.figures.units:render_unit_grid", category="Every unit on noise",
        caption="Input gradients of every unit of one layer on a single Gaussian-noise image (the "
                "same image for all units), each rescaled on its own to the display range. The "
                "units are split into equal contiguous blocks, one per class (the SoftMaxPool "
                "convention), one panel per class; a second row, if present, shows the compared "
                "experiment's first-seed model on the same noise image.",
        inputs=(COMPARE,), required=("layer",),
        options={"layer": {"type": "string", "description": "e.g. net.augmax"},
                 "compare": {"type": "string",
                             "description": "another experiment (same classes) drawn below"},
                 "compare_layer": {"type": "string", "description": "default: layer"},
                 "noise_seed": {"type": "integer", "minimum": 0, "default": 0}}),
    "kernel_views": FigureKind(
        render="whitebox.figures.kernels:render_kernel_views", category="Kernel views",
        caption="The kernels of an invariance layer with the largest norm (rows) under each of the "
                "views the layer convolves with (columns). All views of one kernel share one "
                "colour scale, divided by the kernel's largest absolute weight: non-negative "
                "kernels on a sequential scale (zero darkest), signed ones in RGB or on a "
                "diverging scale; differences between columns are the layer's transforms. The "
                "bars give the share of the layer's maxima (over test images, output channels "
                "and positions) that each view wins. For a layer with learned perspective "
                "parameters, the last panel scatters every output channel's (p1, p2) per view.",
        inputs=(DATA,), required=("layer",),
        options={"layer": {"type": "string", "description": "the invariance layer, e.g. net.conv2"},
                 "n_kernels": {"type": "integer", "minimum": 1, "default": 6}}),
    # The parts of a prototype network.
    "prototype_parts": FigureKind(
        render="whitebox.figures.prototypes:render_prototype_parts", category="Prototype parts",
        caption="How a prototype network explains its predictions on the first test images: the "
                "image with one box per part of the best-scoring prototypes of the predicted "
                "class, and per prototype one tile per part, the training patch the part was "
                "pushed to (grey when it was never pushed).",
        inputs=(DATA,),
        options={"n_images": {"type": "integer", "minimum": 1, "default": 4},
                 "n_prototypes": {"type": "integer", "minimum": 1, "default": 3}}),
}

FILE_OPTION = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$",
               "description": "file name (no extension) under results/<dataset>/; "
                              "default <experiment>_<kind>"}


def options_schema(kind: str) -> dict:
    """The JSON Schema of one figure entry of config.yaml (``file`` and the kind's options)."""
    spec = FIGURE_KINDS[kind]
    schema = {"type": "object", "additionalProperties": False,
              "properties": {"file": FILE_OPTION, **spec.options}}
    if spec.required:
        schema["required"] = list(spec.required)
    return schema


def options_problem(kind: str, options: dict) -> str | None:
    """What the schema cannot say about a kind's options (None when they are fine)."""
    if kind == "noise_gradients" and ("layer" in options) == bool(options.get("layers")):
        return "give either layer (with units) or layers (a map of layer -> units)"
    return None


def noise_gradient_rows(options: dict) -> list[tuple[str, list[int]]]:
    """``[(layer, units), ...]`` of a noise_gradients figure (one ``layer`` or a ``layers`` map),
    several layers in name order."""
    if options.get("layers"):
        return [(layer, list(units)) for layer, units in sorted(options["layers"].items())]
    return [(options["layer"], list(options["units"]))]
