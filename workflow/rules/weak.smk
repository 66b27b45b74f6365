rule weak_classify:
    """Finetune one weak model on gold; its class probabilities on strong_train, val and test."""
    input:
        model_input,
        weak_train="results/classification/{dataset}/splits/weak_train.parquet",
        strong_train="results/classification/{dataset}/splits/strong_train.parquet",
        val="results/classification/{dataset}/splits/val.parquet",
        test="results/classification/{dataset}/splits/test.parquet",
    output:
        labels="results/classification/{dataset}/weak/{model}/seed{seed}/labels.parquet",
        metrics="results/classification/{dataset}/weak/{model}/seed{seed}/metrics.json",
    log:
        "results/logs/weak_classify/{dataset}/{model}/seed{seed}.log",
    benchmark:
        "results/benchmarks/weak_classify/{dataset}/{model}/seed{seed}.tsv"
    conda:
        "../../envs/ws2s-train.yaml"
    threads: job_threads("weak")
    resources:
        **job_resources("weak"),
    params:
        slice=run_params("weak_classify"),
        code=code_version("ws2s.stages.weak_classify", "ws2s.models"),
    shell:
        logged(
            "WS2S_THREADS={threads} ws2s weak-classify --params {params.slice:q} --models-root results/models "
            "--split-dir results/classification/{wildcards.dataset}/splits "
            "--out-labels {output.labels} --out-metrics {output.metrics}"
        )
