# Fill the paper's templates from result files, then build paper/main.pdf with latexmk.


# What config.yaml says about each experiment beyond its run (titles, families, findings,
# reported numbers, figure options): the paper's and the tables' presentation. Written here
# (no process start), so that editing it reruns the paper rules and never training.
rule presentation:
    output:
        "results/summary/presentation.json",
    log:
        "logs/paper/presentation.log",
    params:
        presentation=presentation_json(),
    run:
        Path(output[0]).write_text(f"{params.presentation}\n")
        Path(log[0]).write_text(f"wrote {output[0]}\n")


rule paper_generated:
    output:
        GENERATED,
    input:
        metrics=all_runs("metrics.json"),
        train_logs=all_runs("train_log.csv"),  # the train-test gap's train accuracy
        evaluations=all_evaluations(),
        gradient_metrics=all_runs("gradient_metrics.json"),
        figures=list(FIGURES),
        comparison=COMPARISON_FIGURES,
        templates=PAPER_TEMPLATES,
        presentation=rules.presentation.output[0],
    log:
        "logs/paper/generated.log",
    benchmark:
        "logs/benchmarks/paper/generated.tsv"
    resources:
        **resources_of("paper"),
    params:
        figures=figure_args(FIGURES),
        comparison=COMPARISON_FIGURE_ARGS,
        claims=claims_json(),
        code=command_code("paper"),
    conda:
        "../envs/whitebox.yaml"
    shell:
        "python -m whitebox paper --metrics {input.metrics} {params.figures} {params.comparison}"
        " --claims {params.claims:q} --presentation {input.presentation}"
        " --templates paper/templates --out paper/generated --paper-dir paper"
        " > {log} 2>&1"


rule paper_pdf:
    output:
        report("paper/main.pdf", category="Paper", caption="../report/paper.rst"),
    input:
        main="paper/main.tex",
        bib="paper/references.bib",
        generated=GENERATED,
        figures=list(FIGURES),
        comparison=COMPARISON_FIGURES,
    log:
        "logs/paper/latexmk.log",
    benchmark:
        "logs/benchmarks/paper/latexmk.tsv"
    resources:
        **resources_of("paper"),
    conda:
        "../envs/latex.yaml"
    shell:
        "latexmk -pdf -interaction=nonstopmode -halt-on-error -cd {input.main} > {log} 2>&1"


# The paper's tables as CSV (accuracy and gradient metrics per experiment; claims and their
# verdicts), shown in the Snakemake report (snakemake --report report.html).
rule summary_tables:
    output:
        experiments=report(
            "results/summary/experiments.csv",
            category="Metrics and claims",
            caption="../report/experiments_table.rst",
        ),
        claims=report(
            "results/summary/claims.csv",
            category="Metrics and claims",
            caption="../report/claims_table.rst",
        ),
    input:
        metrics=all_runs("metrics.json"),
        train_logs=all_runs("train_log.csv"),  # the train-test gap's train accuracy
        evaluations=all_evaluations(),
        gradient_metrics=all_runs("gradient_metrics.json"),
        presentation=rules.presentation.output[0],
    log:
        "logs/paper/summary_tables.log",
    resources:
        **resources_of("paper"),
    params:
        claims=claims_json(),
        code=command_code("summary"),
    conda:
        "../envs/whitebox.yaml"
    shell:
        "python -m whitebox summary --metrics {input.metrics} --claims {params.claims:q}"
        " --presentation {input.presentation}"
        " --out-experiments {output.experiments} --out-claims {output.claims}"
        " > {log} 2>&1"
