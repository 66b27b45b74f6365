rule classification_splits:
    """Balanced binary pairs, disjoint by question; strong_train's gold kept in its own file."""
    input:
        split_data,
    output:
        weak_train="results/classification/{dataset}/splits/weak_train.parquet",
        strong_train="results/classification/{dataset}/splits/strong_train.parquet",
        strong_train_gold="results/classification/{dataset}/splits/strong_train_gold.parquet",
        val="results/classification/{dataset}/splits/val.parquet",
        val_gold="results/classification/{dataset}/splits/val_gold.parquet",
        test="results/classification/{dataset}/splits/test.parquet",
    log:
        "results/logs/classification_splits/{dataset}.log",
    conda:
        "../../envs/ws2s-data.yaml"
    params:
        slice=run_params("classification_splits"),
        code=code_version("ws2s.stages.classification_splits"),
    shell:
        logged(
            "ws2s classification-splits --params {params.slice:q} "
            "--out-dir results/classification/{wildcards.dataset}/splits"
        )
