# Fill the paper's templates from result files, then build paper/main.pdf with latexmk.

rule paper_generated:
    output:
        GENERATED,
    input:
        metrics=all_metrics(),
        evaluations=all_evaluations(),
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
    conda:
        "../envs/whitebox.yaml"
    shell:
        "python -m whitebox paper --metrics {input.metrics} {params.figures}"
        " --templates paper/templates --out paper/generated --paper-dir paper"
        ""
        " > {log} 2>&1"


rule paper_pdf:
    output:
        "paper/main.pdf",
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
