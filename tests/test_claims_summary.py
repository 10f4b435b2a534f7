"""The claims summary (whitebox.paper.verdicts) lists every claim config.yaml makes, with a
mark: reported accuracies, findings, config claims, and a claim for each INH evaluation."""

from __future__ import annotations

from pathlib import Path

from whitebox.config import load_config, presentation
from whitebox.paper.claims import (
    METRIC_LABELS,
    REPORTED_ACCURACY_CLAIM,
    SANITY_METRICS,
    claim_group,
)
from whitebox.paper.findings import BY_EYE
from whitebox.paper.verdicts import MARKS, UNTESTED, claims_summary

CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"
# The claim metric that decides what each INH evaluation was run for.
EVALUATION_METRICS = {"slot_update": {"slot_update_gain"}, "ood": {"ood_auroc"},
                      "attacks": {"pgd_accuracy"}, "class_incremental": {"class_incremental_auroc"},
                      "label_errors": {"label_error_recall", "label_error_precision"}}


def _summary_without_results() -> tuple[dict, dict]:
    config = load_config(CONFIG)
    shown = presentation(config)
    return config, claims_summary([], [], shown, config["claims"])


def test_every_claim_of_config_has_a_row_with_a_mark():
    config, summary = _summary_without_results()
    rows = summary["log"] + summary["beyond"] + summary["sanity"]
    listed = {(row["name"], row["text"]) for row in rows}
    expected = {(item["experiment"], item["text"]) for item in config["claims"]["items"]}
    for name, entry in config["experiments"].items():
        if entry.get("finding"):
            expected.add((name, entry["finding"]["text"]))
        if (entry.get("reported") or {}).get("test_accuracy") is not None:
            expected.add((name, REPORTED_ACCURACY_CLAIM))
    missing = expected - listed
    assert not missing, f"claims of config.yaml missing from the summary: {sorted(missing)}"
    assert all(row["mark"] in MARKS for row in rows)
    # Nothing ran: every row is untested (with its reason), never silently reproduced.
    assert {row["mark"] for row in rows} == {UNTESTED}
    assert all(row["reason"] for row in rows)


def test_every_inh_evaluation_is_decided_by_a_claim():
    config, _ = _summary_without_results()
    claimed: dict[str, set[str]] = {}
    for item in config["claims"]["items"]:
        for name in (item["experiment"], item.get("than")):
            claimed.setdefault(name, set()).add(item["metric"])
    undecided = [(name, kind) for name, entry in config["experiments"].items()
                 for kind in entry.get("evaluations", []) if kind in EVALUATION_METRICS
                 and not EVALUATION_METRICS[kind] & claimed.get(name, set())]
    assert not undecided, f"INH evaluations without a claim in config.yaml: {undecided}"


def test_sanity_checks_and_claims_beyond_the_log_are_apart_and_pictures_are_by_eye():
    config, summary = _summary_without_results()
    assert summary["sanity"], "the Adebayo sanity checks form their own group"
    for group in ("sanity", "beyond"):
        expected = {(item["experiment"], item["text"]) for item in config["claims"]["items"]
                    if claim_group(item) == group}
        assert expected and {(row["name"], row["text"]) for row in summary[group]} == expected
    assert {METRIC_LABELS[m] for m in SANITY_METRICS} <= {row["metric"] for row in summary["sanity"]}
    with_results = [{"name": name, **shown, "finding": shown["finding"]}
                    for name, shown in presentation(config).items() if shown["finding"]]
    by_eye = claims_summary(with_results, [], presentation(config), {"items": []})
    pictures = [row for row in by_eye["log"] if row["mark"] == BY_EYE]
    assert pictures and all(not row["claim"] for row in pictures)
