"""The log's findings as checks on our numbers: "X is less accurate than Y", computed.

An experiment's config entry may carry a ``finding``: the log's claim in words and a
comparison that tests it, e.g. ``{text: less accurate than Conv2d, relation: lower,
than: conv_simple}``. The comparison uses the experiments' test accuracies over seeds:

* ``difference`` d = mean(this) - mean(than), in points;
* ``spread`` s = sqrt(std(this)^2 + std(than)^2), the seed-to-seed noise of d (0 with one
  seed each);
* ``margin`` m (config, default 0 for ``lower``/``higher``; for ``similar`` config.yaml's
  claims.margins.test_accuracy, 1 point by default);
* ``time_ratio``: mean training wall time over that of the compared experiment (the log
  reports slowdowns such as "8x slower").

Verdicts: for ``lower``, *reproduced* when d < -max(m, s), *not reproduced* when d > s,
else *inconclusive* (the gap is within the noise); ``higher`` mirrors it; for
``similar``, *reproduced* when |d| <= m, *not reproduced* when |d| > m + s, else
inconclusive. ``at_least`` (a number the log reports that a stage should reach) is
*reproduced* when |d| <= m, *reproduced (higher)* when d > m (the stage beats the log),
*not reproduced* when d < -(m + s), else inconclusive; ``at_most`` mirrors it
(*reproduced (lower)*). A verdict is only as good as the number of seeds: with one seed
the spread is unknown and counts as 0.

A finding without ``relation`` is about the pictures (e.g. "noisier gradients"); its
verdict is *by eye*; config.yaml's claims test such findings with gradient metrics
(:mod:`whitebox.paper.claims`).

Experiments with a ``family`` are grouped into one table per family; an experiment that
a finding compares against is shown in that table too (as a reference row).
"""

from __future__ import annotations

import math
from typing import Any

from whitebox.paper.errors import PaperInputError

RELATIONS = ("lower", "higher", "similar", "at_least", "at_most")
DEFAULT_MARGIN = {"lower": 0.0, "higher": 0.0, "similar": 1.0, "at_least": 0.0, "at_most": 0.0}
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
REPRODUCED_HIGHER, REPRODUCED_LOWER = "reproduced (higher)", "reproduced (lower)"
# How a relation reads in a sentence: "lower than X", "similar to X", "at least 90".
RELATION_WORDS = {"lower": "lower than", "higher": "higher than", "similar": "similar to",
                  "at_least": "at least", "at_most": "at most"}
BY_EYE = "by eye"  # a finding about the pictures, with no number to test it


def verdict(difference: float, spread: float, relation: str, margin: float) -> str:
    """The verdict on a claimed ``relation`` given the measured difference (see module doc)."""
    if relation in ("at_least", "at_most"):
        beyond = difference if relation == "at_least" else -difference
        if abs(difference) <= margin:
            return REPRODUCED
        if beyond > margin:
            return REPRODUCED_HIGHER if relation == "at_least" else REPRODUCED_LOWER
        return NOT_REPRODUCED if beyond < -(margin + spread) else INCONCLUSIVE
    if relation == "lower":
        difference, relation = -difference, "higher"
    if relation == "higher":
        if difference > max(margin, spread):
            return REPRODUCED
        return NOT_REPRODUCED if difference < -spread else INCONCLUSIVE
    if relation == "similar":
        if abs(difference) <= margin:
            return REPRODUCED
        return NOT_REPRODUCED if abs(difference) > margin + spread else INCONCLUSIVE
    raise PaperInputError(f"unknown finding relation '{relation}'; valid: {', '.join(RELATIONS)}")


def evaluate_finding(experiment: dict[str, Any], by_name: dict[str, dict[str, Any]],
                     similar_margin: float = DEFAULT_MARGIN["similar"]) -> dict | None:
    """The finding of one experiment summary, with its evidence and verdict (None if it has none).

    ``similar_margin``: the margin of a "similar" finding that gives none (config.yaml
    claims.margins.test_accuracy)."""
    finding = experiment.get("finding")
    if not finding:
        return None
    if "relation" not in finding:
        return {"text": finding["text"], "relation": None, "verdict": BY_EYE, "time_ratio": None,
                "single_seed": False}
    other_name = finding["than"]
    if other_name not in by_name:
        raise PaperInputError(
            f"experiment '{experiment['name']}': its finding compares with '{other_name}', "
            "which has no results; train it too (or drop the finding)"
        )
    other = by_name[other_name]
    relation = finding["relation"]
    default_margin = similar_margin if relation == "similar" else DEFAULT_MARGIN.get(relation, 0.0)
    margin = float(finding.get("margin", default_margin))
    difference = experiment["mean"] - other["mean"]
    spread = math.hypot(experiment["std"], other["std"])
    return {
        "text": finding["text"],
        "relation": relation,
        "than": other_name,
        "than_title": other["title"],
        "margin": margin,
        "difference": difference,
        "spread": spread,
        "verdict": verdict(difference, spread, relation, margin),
        "single_seed": min(experiment["n"], other["n"]) < 2,  # no spread known
        "time_ratio": time_ratio(experiment, other),
    }


def time_ratio(experiment: dict[str, Any], other: dict[str, Any]) -> float | None:
    """Mean training wall time of ``experiment`` over that of ``other`` (None if unknown).

    Only comparable when both ran on the same kind of device (the tables print the devices).
    """
    base = other.get("wall_time_mean") or 0.0
    return experiment["wall_time_mean"] / base if base > 0 else None


def family_tables(experiments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One table per family (in order of first appearance): its experiments plus reference rows.

    A reference row is an experiment outside the family that one of its findings compares
    against; it is listed first, so each table reads baseline, then variants.
    """
    by_name = {e["name"]: e for e in experiments}
    families = list(dict.fromkeys(e["family"] for e in experiments if e["family"]))
    tables = []
    for family in families:
        members = [e for e in experiments if e["family"] == family]
        references = []
        for e in members:
            than = (e.get("finding") or {}).get("than")
            if than and than in by_name and by_name[than]["family"] != family \
                    and by_name[than] not in references:
                references.append(by_name[than])
        rows = [{"experiment": e, "reference": True} for e in references]
        rows += [{"experiment": e, "reference": False} for e in members]
        verdicts = [e["finding_result"]["verdict"] for e in members if e["finding_result"]]
        tables.append({
            "family": family,
            "title": members[0]["family_title"],
            "rows": rows,
            "figure_experiments": [e for e in members if e["figures"]],
            "counts": {v: verdicts.count(v) for v in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)},
        })
    return tables
