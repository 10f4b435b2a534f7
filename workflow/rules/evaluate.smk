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
