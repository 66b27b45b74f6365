rule table1:
    """Table 1: every model finetuned on ground truth, accuracy mean ± std over seeds."""
    input:
        table1_inputs(),
    output:
        csv=report("results/tables/table1.csv", caption="../report/table1.rst", category="Tables"),
        md="results/tables/table1.md",
    params:
        slice=table_params("table1"),
        code=code_version("ws2s.tables"),
    log:
        "results/logs/tables/table1.log",
    conda:
        "../../envs/ws2s-data.yaml"
    shell:
        "ws2s table1 --params {params.slice:q} --out-stem results/tables/table1 {input} > {log} 2>&1"


for _name, _dataset in w2s_tables().items():

    rule:
        """Tables 2 (SciQ) and 7 (Cosmos QA): every Weak(S)-to-Strong method, accuracy and PGR."""
        name:
            f"{_name}"
        input:
            weak=weak_metrics(_dataset),
            strong=strong_metrics(_dataset),
        output:
            csv=report(f"results/tables/{_name}.csv", caption="../report/table_w2s.rst", category="Tables"),
            md=f"results/tables/{_name}.md",
        params:
            slice=w2s_table_params(_name, _dataset),
            code=code_version("ws2s.tables"),
        log:
            f"results/logs/tables/{_name}.log",
        conda:
            "../../envs/ws2s-data.yaml"
        shell:
            f"ws2s table-w2s --dataset {_dataset} --params {{params.slice:q}} --out-stem results/tables/{_name} "
            "--weak {input.weak} --strong {input.strong} > {log} 2>&1"
