# Figures of one trained model (the first seed): gradients on test images, filters.


rule gradients:
    wildcard_constraints:
        experiment=EXPERIMENT_NAMES,
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
    wildcard_constraints:
        experiment=EXPERIMENT_NAMES,
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


rule slots:
    wildcard_constraints:
        experiment=EXPERIMENT_NAMES,
    output:
        report(
            "results/{dataset}/{experiment}_slots.png",
            category="INH slots",
            caption="../report/slots.rst",
        ),
    input:
        model=first_seed_model,
        code=library_sources("layers", "models", "figures"),
    log:
        "logs/slots/{dataset}/{experiment}.log",
    benchmark:
        "logs/benchmarks/slots/{dataset}/{experiment}.tsv"
    params:
        max_per_class=lambda wildcards: figure_option(wildcards, "slots", "max_per_class"),
    resources:
        mem_mb=2000,
    conda:
        "../envs/whitebox.yaml"
    shell:
        "python -m whitebox slots --model {input.model} --max-per-class {params.max_per_class}"
        " --out {output} > {log} 2>&1"


rule slot_update_curve:
    wildcard_constraints:
        experiment=EXPERIMENT_NAMES,
    output:
        report(
            "results/{dataset}/{experiment}_slot_update.png",
            category="INH slot update",
            caption="../report/slot_update.rst",
        ),
    input:
        evaluation=lambda wildcards: f"{run_dir(wildcards.experiment, config['seeds'][0])}/slot_update.json",
        code=library_sources("figures"),
    log:
        "logs/slot_update_curve/{dataset}/{experiment}.log",
    benchmark:
        "logs/benchmarks/slot_update_curve/{dataset}/{experiment}.tsv"
    resources:
        mem_mb=1000,
    conda:
        "../envs/whitebox.yaml"
    shell:
        "python -m whitebox slot-update-curve --evaluation {input.evaluation} --out {output}"
        " > {log} 2>&1"


rule noise_gradients:
    wildcard_constraints:
        experiment=EXPERIMENT_NAMES,
    output:
        report(
            "results/{dataset}/{experiment}_noise_gradients.png",
            category="Gradients on noise",
            caption="../report/noise_gradients.rst",
        ),
    input:
        model=first_seed_model,
        code=library_sources("layers", "models", "explain", "figures"),
    log:
        "logs/noise_gradients/{dataset}/{experiment}.log",
    benchmark:
        "logs/benchmarks/noise_gradients/{dataset}/{experiment}.tsv"
    params:
        layer=lambda wildcards: figure_option(wildcards, "noise_gradients", "layer"),
        units=lambda wildcards: " ".join(
            str(u) for u in figure_option(wildcards, "noise_gradients", "units")
        ),
        n_samples=lambda wildcards: figure_option(wildcards, "noise_gradients", "n_samples"),
    resources:
        mem_mb=2000,
    conda:
        "../envs/whitebox.yaml"
    shell:
        "python -m whitebox noise-gradients --model {input.model} --layer {params.layer}"
        " --units {params.units} --n-samples {params.n_samples} --out {output} > {log} 2>&1"
