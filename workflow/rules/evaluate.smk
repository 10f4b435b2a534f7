# Extra evaluations of one trained model (one seed): <evaluation>.json next to its metrics.


rule evaluate:
    output:
        "results/{dataset}/{experiment}/seed{seed}/{evaluation}.json",
    input:
        model="results/{dataset}/{experiment}/seed{seed}/model.pt",
        data=prepared_data,
        ood=ood_images,
        code=library_sources("data", "layers", "models", "evaluation"),
    log:
        "logs/evaluate/{dataset}/{experiment}/seed{seed}/{evaluation}.log",
    benchmark:
        "logs/benchmarks/evaluate/{dataset}/{experiment}/seed{seed}/{evaluation}.tsv"
    params:
        ood=lambda wildcards, input: f"--ood-data {input.ood}" if input.ood else "",
    threads: 2
    resources:
        **resources_of("evaluate"),
    conda:
        "../envs/whitebox.yaml"
    shell:
        "python -m whitebox evaluate --kind {wildcards.evaluation} --model {input.model}"
        " --data {input.data} {params.ood} --seed {wildcards.seed}"
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
        code=library_sources("data", "layers", "models", "explain"),
    log:
        "logs/gradient_metrics/{dataset}/{experiment}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/gradient_metrics/{dataset}/{experiment}/seed{seed}.tsv"
    params:
        twin=lambda wildcards, input: f"--twin {input.twin}" if input.twin else "",
        settings=gradient_metric_args(),
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
