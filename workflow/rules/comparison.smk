# Figures across experiments (whitebox compare KIND): test accuracy against gradient quality
# of every experiment, and per dataset of config's gradient_comparison block the stages'
# class-logit gradients on the same images. Like the figures of one model they take seconds
# of CPU, so under a cluster executor they run on the submit host (localrule).

ACCURACY_QUALITY = "results/summary/accuracy_vs_gradient_quality.png"
# What rule all and the paper include.
COMPARISON_FIGURES = [ACCURACY_QUALITY] + [
    f"results/{dataset}/gradient_comparison.png" for dataset in COMPARED_STAGES
]
# How the paper command is told which is which (whitebox paper --comparison-figure).
COMPARISON_FIGURE_ARGS = " ".join(
    [f"--comparison-figure accuracy_quality={ACCURACY_QUALITY}"]
    + [
        f"--comparison-figure gradient_comparison:{dataset}=results/{dataset}/gradient_comparison.png"
        for dataset in COMPARED_STAGES
    ]
)


rule accuracy_quality:
    localrule: True
    output:
        report(ACCURACY_QUALITY, category="Comparisons", caption="../report/accuracy_quality.rst"),
    input:
        metrics=quality_runs("metrics.json"),
        gradient_metrics=quality_runs("gradient_metrics.json"),
    log:
        "logs/compare/accuracy_quality.log",
    benchmark:
        "logs/benchmarks/compare/accuracy_quality.tsv"
    params:
        **quality_twins_json(),
        options=comparison_options("accuracy_quality"),
        code=command_code("compare", code_module(COMPARISONS["accuracy-quality"].render)),
    resources:
        **resources_of("figures"),
    conda:
        "../envs/whitebox.yaml"
    shell:
        "python -m whitebox compare accuracy-quality --metrics {input.metrics}"
        " --presentation {params.presentation:q} --claims {params.claims:q} {params.options}"
        " --out {output} > {log} 2>&1"


rule gradient_comparison:
    localrule: True
    wildcard_constraints:
        dataset="|".join(COMPARED_STAGES) or "(?!)",
    output:
        report(
            "results/{dataset}/gradient_comparison.png",
            category="Comparisons",
            caption="../report/gradient_comparison.rst",
        ),
    input:
        models=compared_models,
        data=compared_data,
    log:
        "logs/compare/{dataset}/gradient_comparison.log",
    benchmark:
        "logs/benchmarks/compare/{dataset}/gradient_comparison.tsv"
    params:
        args=compared_stage_args,
        options=comparison_options("gradient_comparison"),
        code=compared_code,
    resources:
        **resources_of("figures"),
    conda:
        "../envs/whitebox.yaml"
    shell:
        "python -m whitebox compare gradients {params.args} {params.options} --out {output}"
        " > {log} 2>&1"
