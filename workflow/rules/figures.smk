# Figures of one trained model (the first seed). Each rule writes results/{dataset}/{figure}.png
# for the figures of its kind only (see figure_names); the file name comes from config.


rule gradients:
    wildcard_constraints:
        figure=figure_names("gradients"),
    output:
        report(
            "results/{dataset}/{figure}.png",
            category="Input gradients",
            caption="../report/gradients.rst",
        ),
    input:
        model=first_seed_model,
        data=figure_data,
        code=library_sources("data", "layers", "models", "explain", "figures"),
    log:
        "logs/gradients/{dataset}/{figure}.log",
    benchmark:
        "logs/benchmarks/gradients/{dataset}/{figure}.tsv"
    params:
        n_images=lambda wildcards: figure_option(wildcards, "n_images"),
    resources:
        **resources_of("figures"),
    conda:
        "../envs/whitebox.yaml"
    shell:
        "python -m whitebox gradients --model {input.model} --data {input.data}"
        " --n-images {params.n_images} --out {output}"
        " > {log} 2>&1"


rule filters:
    wildcard_constraints:
        figure=figure_names("filters"),
    output:
        report(
            "results/{dataset}/{figure}.png",
            category="First-layer filters",
            caption="../report/filters.rst",
        ),
    input:
        model=first_seed_model,
        code=library_sources("layers", "models", "figures"),
    log:
        "logs/filters/{dataset}/{figure}.log",
    benchmark:
        "logs/benchmarks/filters/{dataset}/{figure}.tsv"
    params:
        layer=lambda wildcards: figure_option(wildcards, "layer"),
        group_size=lambda wildcards: figure_option(wildcards, "group_size"),
    resources:
        **resources_of("figures"),
    conda:
        "../envs/whitebox.yaml"
    shell:
        "python -m whitebox filters --model {input.model} --layer {params.layer}"
        " --group-size {params.group_size} --out {output}"
        " > {log} 2>&1"


rule slots:
    wildcard_constraints:
        figure=figure_names("slots"),
    output:
        report(
            "results/{dataset}/{figure}.png",
            category="INH slots",
            caption="../report/slots.rst",
        ),
    input:
        model=first_seed_model,
        code=library_sources("layers", "models", "figures"),
    log:
        "logs/slots/{dataset}/{figure}.log",
    benchmark:
        "logs/benchmarks/slots/{dataset}/{figure}.tsv"
    params:
        max_per_class=lambda wildcards: figure_option(wildcards, "max_per_class"),
    resources:
        **resources_of("figures"),
    conda:
        "../envs/whitebox.yaml"
    shell:
        "python -m whitebox slots --model {input.model} --max-per-class {params.max_per_class}"
        " --out {output} > {log} 2>&1"


rule slot_update_curve:
    wildcard_constraints:
        figure=figure_names("slot_update"),
    output:
        report(
            "results/{dataset}/{figure}.png",
            category="INH slot update",
            caption="../report/slot_update.rst",
        ),
    input:
        evaluation=lambda wildcards: f"{first_seed_run(wildcards)}/slot_update.json",
        code=library_sources("figures"),
    log:
        "logs/slot_update_curve/{dataset}/{figure}.log",
    benchmark:
        "logs/benchmarks/slot_update_curve/{dataset}/{figure}.tsv"
    resources:
        **resources_of("figures"),
    conda:
        "../envs/whitebox.yaml"
    shell:
        "python -m whitebox slot-update-curve --evaluation {input.evaluation} --out {output}"
        " > {log} 2>&1"


rule noise_gradients:
    wildcard_constraints:
        figure=figure_names("noise_gradients"),
    output:
        report(
            "results/{dataset}/{figure}.png",
            category="Gradients on noise",
            caption="../report/noise_gradients.rst",
        ),
    input:
        model=first_seed_model,
        code=library_sources("layers", "models", "explain", "figures"),
    log:
        "logs/noise_gradients/{dataset}/{figure}.log",
    benchmark:
        "logs/benchmarks/noise_gradients/{dataset}/{figure}.tsv"
    params:
        layers=noise_gradient_args,
        n_samples=lambda wildcards: figure_option(wildcards, "n_samples"),
    resources:
        **resources_of("figures"),
    conda:
        "../envs/whitebox.yaml"
    shell:
        "python -m whitebox noise-gradients --model {input.model} {params.layers}"
        " --n-samples {params.n_samples} --out {output} > {log} 2>&1"


rule unit_grid:
    wildcard_constraints:
        figure=figure_names("unit_grid"),
    output:
        report(
            "results/{dataset}/{figure}.png",
            category="Every unit on noise",
            caption="../report/unit_grid.rst",
        ),
    input:
        model=first_seed_model,
        compare=unit_grid_compare_model,
        code=library_sources("layers", "models", "explain", "figures"),
    log:
        "logs/unit_grid/{dataset}/{figure}.log",
    benchmark:
        "logs/benchmarks/unit_grid/{dataset}/{figure}.tsv"
    params:
        layer=lambda wildcards: shlex.quote(figure_option(wildcards, "layer")),
        compare=unit_grid_compare_args,
        noise_seed=lambda wildcards: figure_option(wildcards, "noise_seed"),
    resources:
        **resources_of("figures"),
    conda:
        "../envs/whitebox.yaml"
    shell:
        "python -m whitebox unit-grid --model {input.model} --layer {params.layer}"
        " {params.compare} --noise-seed {params.noise_seed} --out {output} > {log} 2>&1"


rule kernel_views:
    wildcard_constraints:
        figure=figure_names("kernel_views"),
    output:
        report(
            "results/{dataset}/{figure}.png",
            category="Kernel views",
            caption="../report/kernel_views.rst",
        ),
    input:
        model=first_seed_model,
        code=library_sources("layers", "models", "figures"),
    log:
        "logs/kernel_views/{dataset}/{figure}.log",
    benchmark:
        "logs/benchmarks/kernel_views/{dataset}/{figure}.tsv"
    params:
        layer=lambda wildcards: shlex.quote(figure_option(wildcards, "layer")),
        n_kernels=lambda wildcards: figure_option(wildcards, "n_kernels"),
    resources:
        **resources_of("figures"),
    conda:
        "../envs/whitebox.yaml"
    shell:
        "python -m whitebox kernel-views --model {input.model} --layer {params.layer}"
        " --n-kernels {params.n_kernels} --out {output} > {log} 2>&1"


rule prototype_parts:
    wildcard_constraints:
        figure=figure_names("prototype_parts"),
    output:
        report(
            "results/{dataset}/{figure}.png",
            category="Prototype parts",
            caption="../report/prototype_parts.rst",
        ),
    input:
        model=first_seed_model,
        data=figure_data,
        code=library_sources("layers", "models", "explain", "figures", "data"),
    log:
        "logs/prototype_parts/{dataset}/{figure}.log",
    benchmark:
        "logs/benchmarks/prototype_parts/{dataset}/{figure}.tsv"
    params:
        n_images=lambda wildcards: figure_option(wildcards, "n_images"),
        n_prototypes=lambda wildcards: figure_option(wildcards, "n_prototypes"),
    resources:
        **resources_of("figures"),
    conda:
        "../envs/whitebox.yaml"
    shell:
        "python -m whitebox prototype-parts --model {input.model} --data {input.data}"
        " --n-images {params.n_images} --n-prototypes {params.n_prototypes} --out {output}"
        " > {log} 2>&1"
