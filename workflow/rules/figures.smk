rule fig3_classification:
    """Figure 3 (classification): how often the weak models agree with each other."""
    input:
        weak_labels_all,
    output:
        report("results/figures/fig3_{dataset}.png", caption="../report/fig3.rst", category="Figures"),
    params:
        title=dataset_title,
        code=code_version("ws2s.figures"),
    log:
        "results/logs/figures/fig3_{dataset}.log",
    conda:
        "../../envs/ws2s-data.yaml"
    shell:
        "ws2s fig-agreement --kind classification --title {params.title:q} --out {output} {input}" + LOGGED


rule fig3_generation:
    """Figure 3 (generation): Levenshtein similarity of the weak models' hypotheses."""
    input:
        weak_hypotheses_all,
    output:
        report("results/figures/fig3_slurp.png", caption="../report/fig3.rst", category="Figures"),
    params:
        code=code_version("ws2s.figures"),
    log:
        "results/logs/figures/fig3_slurp.log",
    conda:
        "../../envs/ws2s-data.yaml"
    shell:
        "ws2s fig-agreement --kind generation --title SLURP --out {output} {input}" + LOGGED


for _name, _dataset in w2s_tables().items():

    rule:
        """PGR per method with seed error bars."""
        name:
            f"pgr_{_dataset}"
        input:
            weak=weak_metrics(_dataset),
            strong=strong_metrics(_dataset),
        output:
            report(f"results/figures/pgr_{_dataset}.png", caption="../report/pgr.rst", category="Figures"),
        params:
            slice=w2s_layout_params(_dataset),
            code=code_version("ws2s.figures", "ws2s.tables"),
        log:
            f"results/logs/figures/pgr_{_dataset}.log",
        conda:
            "../../envs/ws2s-data.yaml"
        shell:
            f"ws2s fig-pgr --title {DATASET_TITLES[_dataset]!r} --params {{params.slice:q}} --out {{output}} "
            "--weak {input.weak} --strong {input.strong}" + LOGGED


for _name, _dataset in w2s_tables().items():

    rule:
        """Reliability diagram: accuracy against confidence of every method's test predictions."""
        name:
            f"reliability_{_dataset}"
        input:
            test=f"results/classification/{_dataset}/splits/test.parquet",
            predictions=strong_predictions(_dataset),
        output:
            report(f"results/figures/reliability_{_dataset}.png", caption="../report/reliability.rst",
                   category="Figures"),
        params:
            code=code_version("ws2s.figures", "ws2s.tables"),
        log:
            f"results/logs/figures/reliability_{_dataset}.log",
        conda:
            "../../envs/ws2s-data.yaml"
        shell:
            f"ws2s fig-reliability --title {DATASET_TITLES[_dataset]!r} --test {{input.test}} --out {{output}} "
            "--predictions {input.predictions}" + LOGGED


rule pgr_slurp:
    """PGR per method of the generation track, with seed error bars."""
    input:
        weak=weak_generation_metrics(),
        strong=gen_strong_metrics(),
    output:
        report("results/figures/pgr_slurp.png", caption="../report/pgr.rst", category="Figures"),
    params:
        slice=gen_table_params(None),
        code=code_version("ws2s.figures", "ws2s.tables"),
    log:
        "results/logs/figures/pgr_slurp.log",
    conda:
        "../../envs/ws2s-data.yaml"
    shell:
        "ws2s fig-pgr --title SLURP --params {params.slice:q} --out {output} "
        "--weak {input.weak} --strong {input.strong}" + LOGGED
