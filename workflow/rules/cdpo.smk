rule cdpo:
    """cDPO (Section 4.2): the weak ensemble ranks the strong model's candidates; conservative DPO on the pairs."""
    input:
        unpack(run_inputs("cdpo")),
    output:
        pairs="results/generation/cdpo/{ensemble}/seed{seed}/pairs.parquet",
        metrics="results/generation/cdpo/{ensemble}/seed{seed}/metrics.json",
    log:
        "results/logs/cdpo/{ensemble}/seed{seed}.log",
    benchmark:
        "results/benchmarks/cdpo/{ensemble}/seed{seed}.tsv"
    priority: generation_priority
    conda:
        "../../envs/ws2s-train.yaml"
    threads: job_threads("strong")
    resources:
        **job_resources("strong"),
    params:
        slice=run_params("cdpo"),
        code=code_version("ws2s.stages.cdpo"),
    shell:
        logged(
            "WS2S_THREADS={threads} ws2s launch --gpus {resources.launch_gpus} --nodes {resources.launch_nodes} -- cdpo --params {params.slice:q} --start-model {input.start_model} "
            "--weak-models {input.weak_models} --split-dir results/generation/splits "
            "--out-pairs {output.pairs} --out-metrics {output.metrics}"
        )


rule table5:
    """Table 5: SLU-F1 and PGR of the strong model before and after cDPO, per seed and on average."""
    input:
        **design.table5_inputs(config),
    output:
        csv=report("results/tables/table5.csv", caption="../report/table5.rst", category="Tables"),
        md="results/tables/table5.md",
    log:
        "results/logs/tables/table5.log",
    conda:
        "../../envs/ws2s-data.yaml"
    params:
        slice=design.table_params(config, "table5"),
        code=code_version("ws2s.tables"),
    shell:
        logged(
            "ws2s table5 --params {params.slice:q} --out-stem results/tables/table5 --cdpo {input.cdpo} "
            "--weak {input.weak} --ceiling {input.ceiling}"
        )
