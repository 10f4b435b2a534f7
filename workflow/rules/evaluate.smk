# Extra evaluations of one trained model (one seed): <evaluation>.json next to its metrics.
# The kinds, what computes them and what they read: whitebox.evaluation.kinds.


rule evaluate:
    output:
        "results/{dataset}/{experiment}/seed{seed}/{evaluation}.json",
    input:
        unpack(evaluation_inputs),
    log:
        "logs/evaluate/{dataset}/{experiment}/seed{seed}/{evaluation}.log",
    benchmark:
        "logs/benchmarks/evaluate/{dataset}/{experiment}/seed{seed}/{evaluation}.tsv"
    params:
        extra=lambda wildcards, input: " ".join(
            f"--extra-data {Path(path).parent.name}={path}" for path in input.extra
        ),
        code=evaluation_code,
    threads: 2
    resources:
        **resources_of("evaluate"),
    conda:
        "../envs/whitebox.yaml"
    shell:
        "python -m whitebox evaluate --kind {wildcards.evaluation} --model {input.model}"
        " --data {input.data} {params.extra} --seed {wildcards.seed}"
        " --threads {threads} --out {output}"
        " > {log} 2>&1"


# Gradient-quality metrics of one trained model (whitebox.explain.metrics), for every run.
rule gradient_metrics:
    output:
        "results/{dataset}/{experiment}/seed{seed}/gradient_metrics.json",
    input:
        model="results/{dataset}/{experiment}/seed{seed}/model.pt",
        twin=random_label_twin_model,
        data=prepared_data,
    log:
        "logs/gradient_metrics/{dataset}/{experiment}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/gradient_metrics/{dataset}/{experiment}/seed{seed}.tsv"
    params:
        twin=lambda wildcards, input: f"--twin {input.twin}" if input.twin else "",
        settings=gradient_metric_args(),
        code=lambda wildcards: command_code("gradient-metrics", experiment=wildcards.experiment),
    threads: 1
    resources:
        **resources_of("evaluate"),
    conda:
        "../envs/whitebox.yaml"
    shell:
        "python -m whitebox gradient-metrics --model {input.model} {params.twin}"
        " --data {input.data} --seed {wildcards.seed} {params.settings}"
        " --threads {threads} --out {output}"
        " > {log} 2>&1"
