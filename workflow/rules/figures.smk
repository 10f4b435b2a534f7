# Figures of one trained model (the first seed): gradients on test images, filters.


rule gradients:
    output:
        report(
            "results/{dataset}/{experiment}_gradients.png",
            category="Input gradients",
            caption="../report/gradients.rst",
        ),
    input:
        model=first_seed_model,
        data=prepared_data,
        code=library_sources("data", "layers", "models", "explain", "figures"),
    log:
        "logs/gradients/{dataset}/{experiment}.log",
    benchmark:
        "logs/benchmarks/gradients/{dataset}/{experiment}.tsv"
    params:
        n_images=lambda wildcards: figure_option(wildcards, "gradients", "n_images"),
    resources:
        mem_mb=4000,
    conda:
        "../envs/whitebox.yaml"
    shell:
        "python -m whitebox gradients --model {input.model} --data {input.data}"
        " --n-images {params.n_images} --out {output}"
        " > {log} 2>&1"


rule filters:
    output:
        report(
            "results/{dataset}/{experiment}_filters.png",
            category="First-layer filters",
            caption="../report/filters.rst",
        ),
    input:
        model=first_seed_model,
        code=library_sources("layers", "models", "figures"),
    log:
        "logs/filters/{dataset}/{experiment}.log",
    benchmark:
        "logs/benchmarks/filters/{dataset}/{experiment}.tsv"
    params:
        layer=lambda wildcards: figure_option(wildcards, "filters", "layer"),
        group_size=lambda wildcards: figure_option(wildcards, "filters", "group_size"),
    resources:
        mem_mb=2000,
    conda:
        "../envs/whitebox.yaml"
    shell:
        "python -m whitebox filters --model {input.model} --layer {params.layer}"
        " --group-size {params.group_size} --out {output}"
        " > {log} 2>&1"
