# Train one experiment for one seed: model.pt, train_log.csv, metrics.json.
# An epoch checkpoint next to them lets a killed job resume where it stopped. The job's
# identity is its params: the run spec and the digest of the training code (common.smk).


rule train:
    output:
        model="results/{dataset}/{experiment}/seed{seed}/model.pt",
        train_log="results/{dataset}/{experiment}/seed{seed}/train_log.csv",
        metrics="results/{dataset}/{experiment}/seed{seed}/metrics.json",
    input:
        data=prepared_data,
    log:
        "logs/train/{dataset}/{experiment}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/train/{dataset}/{experiment}/seed{seed}.tsv"
    params:
        spec=lambda wildcards: spec(wildcards.experiment).to_json(),
        code=lambda wildcards: command_code("train", experiment=wildcards.experiment),
        device=config["device"],
        out_dir=lambda wildcards, output: str(Path(output.metrics).parent),
        mirror=mirror_option,
    threads: 2
    resources:
        **training_resources(),
    conda:
        "../envs/whitebox.yaml"
    # exec: the shell becomes the training process, so a SIGTERM (a SLURM time limit, a
    # pre-emption) reaches it with nobody dying first: it writes its checkpoint, then exits.
    shell:
        "exec python -m whitebox train --spec {params.spec:q} --seed {wildcards.seed}"
        " --data {input.data} --out-dir {params.out_dir} --device {params.device}"
        " --threads {threads} {params.mirror}"
        " > {log} 2>&1"
