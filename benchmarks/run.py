"""Speed targets of whitebox, measured and printed against their targets (`make bench`).

    .venv/bin/python benchmarks/run.py                  # everything (about 20 minutes on 2 cores)
    .venv/bin/python benchmarks/run.py --only throughput --quick

Prints one table and writes benchmarks/results/latest.json. Each line says PASS or MISS
against its target; the exit status is 0 unless the script itself crashes (benchmarks
report, tests judge correctness).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # benchmarks.* and tests.integration.workspace

from benchmarks.report import Measurement, format_table, write_json  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "latest.json"
PARTS = ("workflow", "throughput", "inh", "stages", "metrics", "invariance", "adversarial", "cub",
         "slurm")


def run_part(part: str, quick: bool, earlier: list[Measurement]) -> list[Measurement]:
    """The measurements of one part (imported lazily: throughput loads torch, workflow does not);
    ``earlier`` holds those of the parts already run."""
    if part == "slurm":
        from benchmarks import slurm, workflow

        local = next((m.value for m in earlier if m.name == workflow.SMOKE_NAME), None)
        return slurm.measure(quick=quick, local_smoke_s=local)
    if part == "workflow":
        from benchmarks import workflow

        return workflow.measure()
    if part == "inh":
        from benchmarks import inh

        return inh.measure(quick=quick)
    if part == "stages":
        from benchmarks import stages

        return stages.measure(quick=quick)
    if part == "metrics":
        from benchmarks import metrics

        return metrics.measure(quick=quick)
    if part == "invariance":
        from benchmarks import invariance

        return invariance.measure(quick=quick)
    if part == "adversarial":
        from benchmarks import adversarial

        return adversarial.measure(quick=quick)
    if part == "cub":
        from benchmarks import cub

        return cub.measure(quick=quick)
    from benchmarks import throughput

    return throughput.measure(quick=quick)


def warn_if_busy() -> None:
    """Say so when other processes already load the CPUs: every timing below will suffer."""
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if load > 0.5 * cpus:
        print(f"warning: load average {load:.1f} on {cpus} CPUs before starting; other processes "
              "will slow these timings down", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=PARTS, help="run one part only")
    parser.add_argument("--quick", action="store_true",
                        help="throughput on 2048 images for 1 epoch, no full INH run, stages "
                             "timed on 1024 images, gradient-metric costs of 3 experiments on 512 "
                             "images, not all on 1024, 5 rounds of invariance ratios, not 9, "
                             "adversarial epochs on 512 images, not 2048, CUB steps on 112x112 "
                             "CPU images in 5 rounds, not 224x224 in 7, SLURM "
                             "overhead on 4 training jobs, not the smoke DAG (the workflow part "
                             "is unchanged)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON file (default: {RESULTS})")
    args = parser.parse_args(argv)

    warn_if_busy()
    measurements: list[Measurement] = []
    for part in [args.only] if args.only else PARTS:
        start = time.perf_counter()
        print(f"running {part} benchmarks ...", file=sys.stderr, flush=True)
        measurements += run_part(part, args.quick, measurements)
        print(f"  {part} done in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)

    print(format_table(measurements))
    write_json(measurements, args.out, {"only": args.only, "quick": args.quick})
    counts = {status: sum(m.status == status for m in measurements) for status in ("PASS", "MISS")}
    print(f"\n{counts['PASS']} PASS, {counts['MISS']} MISS; written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
