rule generation_splits:
    """SLURP utterances: weak_train and strong_train from training data, test from the test set."""
    output:
        weak_train="results/generation/splits/weak_train.parquet",
        strong_train="results/generation/splits/strong_train.parquet",
        strong_train_gold="results/generation/splits/strong_train_gold.parquet",
        test="results/generation/splits/test.parquet",
    params:
        slice=generation_split_params,
        code=code_version("ws2s.data.generation_splits"),
    log:
        "results/logs/generation_splits.log",
    conda:
        "../../envs/ws2s-data.yaml"
    shell:
        "ws2s generation-splits --params {params.slice:q} --out-dir results/generation/splits > {log} 2>&1"


rule weak_generate:
    """Finetune one weak causal LM on gold; beam-search generations with per-token log-probs."""
    input:
        model_input,
        weak_train="results/generation/splits/weak_train.parquet",
        strong_train="results/generation/splits/strong_train.parquet",
        test="results/generation/splits/test.parquet",
    output:
        hypotheses="results/generation/weak/{model}/seed{seed}/hypotheses.parquet",
        metrics="results/generation/weak/{model}/seed{seed}/metrics.json",
        model=directory("results/generation/weak/{model}/seed{seed}/model"),
    params:
        slice=weak_generation_params,
        code=code_version("ws2s.train.weak_generation", "ws2s.models"),
    log:
        "results/logs/weak_generate/{model}/seed{seed}.log",
    benchmark:
        "results/benchmarks/weak_generate/{model}/seed{seed}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
    conda:
        "../../envs/ws2s-train.yaml"
    shell:
        "WS2S_THREADS={threads} ws2s weak-generate --params {params.slice:q} --models-root results/models "
        "--split-dir results/generation/splits --out-hypotheses {output.hypotheses} "
        "--out-metrics {output.metrics} --out-model {output.model} > {log} 2>&1"
