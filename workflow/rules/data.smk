# Download (or copy from data_mirror), verify and convert one base dataset to tensors.


rule prepare_dataset:
    output:
        "data/{dataset}/tensors.pt",
    log:
        "logs/prepare_dataset/{dataset}.log",
    benchmark:
        "logs/benchmarks/prepare_dataset/{dataset}.tsv"
    params:
        source=lambda wildcards: json.dumps(dataset_source(config, wildcards.dataset)),
        mirror=mirror_option,
        code=command_code("prepare-data"),
    threads: 4
    resources:
        **resources_of("prepare_dataset"),
    conda:
        "../envs/whitebox.yaml"
    shell:
        "python -m whitebox prepare-data --dataset {wildcards.dataset} --source {params.source:q}"
        " --root data/{wildcards.dataset} --out {output} --workers {threads}"
        " {params.mirror} > {log} 2>&1"
