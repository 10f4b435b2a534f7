"""The claims summary: every claim of the log, in the log's date order, with its mark.

A claim is a row of the claims table (:func:`whitebox.paper.claims.claims_table`: reported
numbers, accuracy findings, config claims), a finding about the pictures (*by eye*), or
one of those about an experiment that has no results (*untested*, with the reason: e.g.
the GPU stage was skipped). Rows are ordered by the first date of the experiment's log
entry within its section of the paper, and sections come in the order config.yaml lists
their experiments (the log's order of stages): the experiment's family, else the first
CIFAR-10 models or Incremental Neural Hashing (INH models and the baselines evaluated
beside them). Claims beyond the log (``group: beyond`` in config) and the pipeline's own
sanity checks form groups of their own.
"""

from __future__ import annotations

import re
from typing import Any

from whitebox.paper.claims import (
    METRIC_LABELS,
    REPORTED_ACCURACY_CLAIM,
    claim_group,
    untested_claims,
)
from whitebox.paper.findings import (
    BY_EYE,
    INCONCLUSIVE,
    NOT_REPRODUCED,
    RELATION_WORDS,
    REPRODUCED,
    REPRODUCED_HIGHER,
    REPRODUCED_LOWER,
)

UNTESTED = "untested"
NOT_RUN = "not run for this document"
# Marks in the order the counts are printed.
MARKS = (REPRODUCED, REPRODUCED_HIGHER, REPRODUCED_LOWER, NOT_REPRODUCED, INCONCLUSIVE, BY_EYE,
         UNTESTED)
FIRST_MODELS, INH_SECTION = "First CIFAR-10 models", "Incremental Neural Hashing"
_DATE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})")


def log_date(entry: str | None) -> tuple[int, ...]:
    """(year, month, day) of the first date in a log entry; entries without one sort last."""
    found = _DATE.search(entry or "")
    if not found:
        return (9999,)
    day, month, year = (int(part) for part in found.groups())
    return (year, month, day)


def section_of(shown: dict[str, Any]) -> str:
    """The section of the paper an experiment (summary or presentation entry) belongs to."""
    if shown.get("family"):
        return shown.get("family_title") or shown["family"]
    if shown.get("is_inh") or shown.get("evaluations"):
        return INH_SECTION
    return FIRST_MODELS


def _row(shown: dict[str, Any], text: str, mark: str, **evidence: Any) -> dict[str, Any]:
    return {"stage": shown["title"], "name": shown["name"], "date": log_date(shown["log_entry"]),
            "log_entry": shown["log_entry"], "section": section_of(shown), "text": text,
            "mark": mark, "metric": None, "compared": None, "claim": None, "reason": None,
            "group": "log", **evidence}


def _compared_with(claim: dict[str, Any]) -> str:
    """``than Directional``, ``at least 94``: what a tested claim compares with."""
    words = RELATION_WORDS[claim["relation"]]
    if claim["than"]:
        return f"{words} {claim['than']['title']}"
    return f"{words} {claim['value']:g}"


def _tested_row(claim: dict[str, Any]) -> dict[str, Any]:
    experiment = claim["experiment"]
    return _row({**experiment, "name": experiment["name"]}, claim["text"], claim["verdict"],
                metric=claim["metric_label"], compared=_compared_with(claim), claim=claim,
                group=claim["group"])


def _untested_reason(name: str, shown: dict[str, dict]) -> str:
    return (shown.get(name) or {}).get("untested") or NOT_RUN


def _untested_rows(experiments: list[dict], shown: dict[str, dict], claims: dict | None
                   ) -> list[dict[str, Any]]:
    """The reported numbers, findings and config claims of experiments without results."""
    have = {e["name"] for e in experiments}
    rows = []
    for name, entry in shown.items():
        if name in have:
            continue
        entry = {**entry, "name": name}
        reason = _untested_reason(name, shown)
        if entry["reported"].get("test_accuracy") is not None:
            rows.append(_row(entry, REPORTED_ACCURACY_CLAIM, UNTESTED,
                             metric=METRIC_LABELS["test_accuracy"], reason=reason))
        if entry.get("finding"):
            rows.append(_row(entry, entry["finding"]["text"], UNTESTED, reason=reason))
    for item in untested_claims(claims, experiments):
        claim = item["claim"]
        entry = {"title": claim["experiment"], "log_entry": "", "family": None,
                 **shown.get(claim["experiment"], {}), "name": claim["experiment"]}
        reason = "; ".join(f"{n}: {_untested_reason(n, shown)}" for n in item["missing"])
        rows.append(_row(entry, claim["text"], UNTESTED, metric=METRIC_LABELS[claim["metric"]],
                         reason=reason, group=claim_group(claim)))
    return rows


def counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many rows carry each mark (marks without rows left out), in :data:`MARKS` order."""
    return {mark: n for mark in MARKS if (n := sum(row["mark"] == mark for row in rows))}


def claims_summary(experiments: list[dict[str, Any]], claim_rows: list[dict[str, Any]],
                   presentation: dict[str, dict] | None, claims: dict[str, Any] | None
                   ) -> dict[str, Any]:
    """The summary page: ``log`` rows (the log's claims), ``beyond`` rows (questions the log
    did not test), ``sanity`` rows (the pipeline's checks), each group's mark counts, and
    ``sections`` (per section of the log's claims its title and mark counts)."""
    shown = presentation or {}
    rows = [_tested_row(c) for c in claim_rows]
    # A finding about the pictures is by eye unless a config claim measures it.
    measured = {c["experiment"] for c in (claims or {}).get("items", [])}
    rows += [_row(e, e["finding"]["text"], BY_EYE, reason="judged from the figures")
             for e in experiments if e.get("finding") and not e["finding"].get("relation")
             and e["name"] not in measured]
    rows += _untested_rows(experiments, shown, claims)
    # Sections in the order config.yaml (and the paper) first reaches them, rows by date.
    order = {name: index for index, name in enumerate([*shown, *(e["name"] for e in experiments)])}
    rows.sort(key=lambda row: order.get(row["name"], len(order)))
    sections = list(dict.fromkeys(row["section"] for row in rows))
    rows.sort(key=lambda row: (sections.index(row["section"]), row["date"]))
    log = [row for row in rows if row["group"] == "log"]
    beyond = [row for row in rows if row["group"] == "beyond"]
    sanity = [row for row in rows if row["group"] == "sanity"]
    return {
        "log": log,
        "beyond": beyond,
        "beyond_counts": counts(beyond),
        "sanity": sanity,
        "sanity_counts": counts(sanity),
        "sections": [{"title": title, "counts": counts([r for r in log if r["section"] == title])}
                     for title in sections],
        "counts": counts(log),
        "single_seed": any(row["claim"] and row["claim"]["single_seed"] for row in rows),
    }
