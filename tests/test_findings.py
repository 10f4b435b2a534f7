"""The log's findings as verdicts on measured accuracies (whitebox.paper.findings)."""

import pytest

from whitebox.paper.errors import PaperInputError
from whitebox.paper.findings import (
    BY_EYE,
    INCONCLUSIVE,
    NOT_REPRODUCED,
    REPRODUCED,
    evaluate_finding,
    family_tables,
    verdict,
)


@pytest.mark.parametrize("difference, spread, relation, margin, expected", [
    (-2.0, 1.0, "lower", 0.0, REPRODUCED),       # clearly lower
    (-0.5, 1.0, "lower", 0.0, INCONCLUSIVE),     # lower, but within the seed spread
    (0.5, 1.0, "lower", 0.0, INCONCLUSIVE),      # higher, but within the spread
    (1.5, 1.0, "lower", 0.0, NOT_REPRODUCED),    # clearly higher
    (-1.5, 1.0, "lower", 2.0, INCONCLUSIVE),     # beyond the spread, not beyond the margin
    (2.0, 1.0, "higher", 0.0, REPRODUCED),
    (-2.0, 1.0, "higher", 0.0, NOT_REPRODUCED),
    (0.1, 0.0, "higher", 0.0, REPRODUCED),       # one seed each: no spread known
    (0.8, 5.0, "similar", 1.0, REPRODUCED),
    (1.5, 1.0, "similar", 1.0, INCONCLUSIVE),
    (-2.5, 1.0, "similar", 1.0, NOT_REPRODUCED),
])
def test_verdicts(difference, spread, relation, margin, expected):
    assert verdict(difference, spread, relation, margin) == expected


def summary(name, mean, std, family=None, finding=None, title=None, wall_time=100.0, n=3):
    return {"name": name, "title": title or name.upper(), "mean": mean, "std": std, "n": n,
            "family": family, "family_title": (family or "").title(), "finding": finding,
            "figures": {}, "wall_time_mean": wall_time}


def test_finding_carries_its_evidence():
    base = summary("bn", 80.0, 0.3, wall_time=50.0)
    variant = summary("iternorm", 77.0, 0.4, "norm",
                      {"text": "worse than BN", "relation": "lower", "than": "bn"}, wall_time=400.0)
    result = evaluate_finding(variant, {"bn": base, "iternorm": variant})
    assert result["difference"] == pytest.approx(-3.0)
    assert result["spread"] == pytest.approx(0.5)
    assert result["verdict"] == REPRODUCED and result["than_title"] == "BN"
    assert result["margin"] == 0.0
    assert result["time_ratio"] == pytest.approx(8.0)  # the stage trains 8x longer than its twin
    assert result["single_seed"] is False
    one_seed = summary("bn", 80.0, 0.0, n=1)
    assert evaluate_finding(variant, {"bn": one_seed, "iternorm": variant})["single_seed"] is True


def test_picture_findings_are_by_eye_and_missing_references_are_errors():
    eye = summary("top4", 70.0, 1.0, "gumbel", {"text": "noisier gradients"})
    assert evaluate_finding(eye, {}) == {"text": "noisier gradients", "relation": None,
                                         "verdict": BY_EYE, "time_ratio": None,
                                         "single_seed": False}
    assert evaluate_finding(summary("plain", 1.0, 0.0), {}) is None
    orphan = summary("x", 70.0, 1.0, "gumbel", {"text": "t", "relation": "lower", "than": "gone"})
    with pytest.raises(PaperInputError, match="'gone', which has no results"):
        evaluate_finding(orphan, {"x": orphan})


def test_family_tables_put_references_first_and_count_verdicts():
    base = summary("bn", 80.0, 0.3, "positive")
    members = [
        summary("iternorm", 77.0, 0.4, "norm", {"text": "w", "relation": "lower", "than": "bn"}),
        summary("dbn", 81.0, 0.4, "norm", {"text": "w", "relation": "lower", "than": "bn"}),
        summary("pct", 79.9, 0.4, "norm", {"text": "w", "relation": "lower", "than": "bn"}),
    ]
    experiments = [base, *members, summary("other", 50.0, 0.0)]
    by_name = {e["name"]: e for e in experiments}
    for e in experiments:
        e["finding_result"] = evaluate_finding(e, by_name)
    positive, norm = family_tables(experiments)
    assert positive["family"] == "positive" and [r["experiment"]["name"] for r in positive["rows"]] == ["bn"]
    assert [(r["experiment"]["name"], r["reference"]) for r in norm["rows"]] == [
        ("bn", True), ("iternorm", False), ("dbn", False), ("pct", False)]
    assert norm["title"] == "Norm"
    assert norm["counts"] == {REPRODUCED: 1, NOT_REPRODUCED: 1, INCONCLUSIVE: 1}
