rule strong_features:
    """Frozen features of the strong model (linear-probe setting, train_layers: 0)."""
    input:
        model_input,
        strong_train="results/classification/{dataset}/splits/strong_train.parquet",
        val="results/classification/{dataset}/splits/val.parquet",
        test="results/classification/{dataset}/splits/test.parquet",
    output:
        features="results/classification/{dataset}/strong/features/{model}.parquet",
        info="results/classification/{dataset}/strong/features/{model}.json",
    log:
        "results/logs/strong_features/{dataset}/{model}.log",
    benchmark:
        "results/benchmarks/strong_features/{dataset}/{model}.tsv"
    conda:
        "../../envs/ws2s-train.yaml"
    threads: job_threads("features")
    resources:
        **job_resources("features"),
    params:
        slice=run_params("strong_features"),
        code=code_version("ws2s.stages.strong_features", "ws2s.models"),
    shell:
        logged(
            "WS2S_THREADS={threads} ws2s strong-features --name {wildcards.model} --params {params.slice:q} "
            "--models-root results/models --split-dir results/classification/{wildcards.dataset}/splits "
            "--out {output.features} --out-info {output.info}"
        )


rule strong_classify:
    """One strong run: a method on its weak labels (or gold, for the ceiling), with or without aux."""
    input:
        unpack(run_inputs("strong_classify")),
    output:
        predictions="results/classification/{dataset}/strong/{method}/{source}/{aux}/seed{seed}/predictions.parquet",
        metrics="results/classification/{dataset}/strong/{method}/{source}/{aux}/seed{seed}/metrics.json",
        curve="results/classification/{dataset}/strong/{method}/{source}/{aux}/seed{seed}/curve.parquet",
    log:
        "results/logs/strong_classify/{dataset}/{method}/{source}/{aux}/seed{seed}.log",
    benchmark:
        "results/benchmarks/strong_classify/{dataset}/{method}/{source}/{aux}/seed{seed}.tsv"
    wildcard_constraints:
        method=design.method_pattern("classification"),
        aux="noaux|aux",
    conda:
        "../../envs/ws2s-train.yaml"
    # A linear probe on cached features is mostly process start-up: one core each, so two
    # run side by side on a 2-core machine.
    threads: 1 if design.linear_probe(config) else job_threads("strong")
    resources:
        **job_resources("strong"),
    params:
        slice=run_params("strong_classify"),
        code=code_version("ws2s.stages.strong_classify", "ws2s.models"),
        features=input_arg("strong_classify", "features", ""),
        gold=input_arg("strong_classify", "gold", []),
    shell:
        logged(
            "WS2S_THREADS={threads} ws2s launch --gpus {resources.launch_gpus} --nodes {resources.launch_nodes} -- strong-classify --params {params.slice:q} "
            "--models-root results/models "
            "--split-dir results/classification/{wildcards.dataset}/splits "
            "--weak-labels {input.weak_labels} --gold {params.gold} --features={params.features} "
            "--out-predictions {output.predictions} --out-metrics {output.metrics} --out-curve {output.curve}"
        )


rule label_models:
    """Every configured label model's soft labels from an ensemble's hard votes (one seed)."""
    input:
        unpack(run_inputs("label_models")),
    output:
        "results/classification/{dataset}/label_models/{ensemble}/seed{seed}.parquet",
    log:
        "results/logs/label_models/{dataset}/{ensemble}/seed{seed}.log",
    conda:
        "../../envs/ws2s-train.yaml"
    params:
        slice=run_params("label_models"),
        code=code_version("ws2s.stages.label_models"),
    shell:
        logged(
            "ws2s label-models --params {params.slice:q} --split-dir results/classification/{wildcards.dataset}/splits "
            "--out {output} {input.weak_labels}"
        )
