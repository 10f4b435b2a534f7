# Fill the paper's templates from result files, then build paper/main.pdf with latexmk.

rule paper_generated:
    output:
        GENERATED,
    input:
        metrics=all_metrics(),
        evaluations=all_evaluations(),
        gradient_metrics=all_gradient_metrics(),
        figures=all_figures(),
        templates=[str(t) for t in PAPER_TEMPLATES],
        code=library_sources("paper"),
    log:
        "logs/paper/generated.log",
    benchmark:
        "logs/benchmarks/paper/generated.tsv"
    resources:
        **resources_of("paper"),
    params:
        figures=figure_args(figure_paths()),
        claims=claims_json(),
    conda:
        "../envs/whitebox.yaml"
    shell:
        "python -m whitebox paper --metrics {input.metrics} {params.figures}"
        " --claims {params.claims:q}"
        " --templates paper/templates --out paper/generated --paper-dir paper"
        " > {log} 2>&1"


rule paper_pdf:
    output:
        report("paper/main.pdf", category="Paper", caption="../report/paper.rst"),
    input:
        main="paper/main.tex",
        bib="paper/references.bib",
        generated=GENERATED,
        figures=all_figures(),
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
        metrics=all_metrics(),
        evaluations=all_evaluations(),
        gradient_metrics=all_gradient_metrics(),
        code=library_sources("paper"),
    log:
        "logs/paper/summary_tables.log",
    resources:
        **resources_of("paper"),
    params:
        claims=claims_json(),
    conda:
        "../envs/whitebox.yaml"
    shell:
        "python -m whitebox summary --metrics {input.metrics} --claims {params.claims:q}"
        " --out-experiments {output.experiments} --out-claims {output.claims}"
        " > {log} 2>&1"
