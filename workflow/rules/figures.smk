# Figures of one trained model (the first seed): one rule per kind of whitebox.figures.kinds,
# named after it. Each writes results/{dataset}/{figure}.png for the figures of its kind only
# (see figure_names); the file name comes from config. A figure takes a second or two of CPU,
# less than a cluster submission costs: under a cluster executor figures run on the submit
# host (localrule).

for figure_kind, declared in FIGURE_KINDS.items():

    rule:
        name:
            figure_kind
        localrule: True
        wildcard_constraints:
            figure=figure_names(figure_kind),
        output:
            report(
                "results/{dataset}/{figure}.png",
                category=declared.category,
                caption="../report/figure.rst",
            ),
        input:
            unpack(figure_inputs),
        log:
            f"logs/{figure_kind}/{{dataset}}/{{figure}}.log",
        benchmark:
            f"logs/benchmarks/{figure_kind}/{{dataset}}/{{figure}}.tsv"
        params:
            kind=figure_kind,
            args=figure_command_args,
            caption=declared.caption,
            code=figure_code,
        resources:
            **resources_of("figures"),
        conda:
            "../envs/whitebox.yaml"
        # params.kind, not the loop variable: Snakemake formats the command when the job runs.
        shell:
            "python -m whitebox figure {params.kind} {params.args} --out {output} > {log} 2>&1"
