rule table1:
    """Table 1: every model finetuned on ground truth, accuracy mean ± std over seeds."""
    input:
        weak_metrics_all(),
    output:
        csv="results/tables/table1.csv",
        md="results/tables/table1.md",
    params:
        slice=table_params("table1"),
    log:
        "results/logs/tables/table1.log",
    shell:
        "ws2s table1 --params {params.slice:q} --out-stem results/tables/table1 {input} > {log} 2>&1"
