rule fig3_classification:
    """Figure 3 (classification): how often the weak models agree with each other."""
    input:
        lambda wildcards: design.weak_files(config, wildcards.dataset, "labels.parquet"),
    output:
        report("results/figures/fig3_{dataset}.png", caption="../report/fig3.rst", category="Figures"),
    log:
        "results/logs/figures/fig3_{dataset}.log",
    conda:
        "../../envs/ws2s-data.yaml"
    params:
        title=lambda wildcards: design.dataset_entry(config, wildcards.dataset).title,
        code=code_version("ws2s.figures"),
    shell:
        logged("ws2s fig-agreement --kind classification --title {params.title:q} --out {output} {input}")


rule fig3_generation:
    """Figure 3 (generation): Levenshtein similarity of the weak models' hypotheses."""
    input:
        design.weak_files(config, None, "hypotheses.parquet"),
    output:
        report("results/figures/fig3_slurp.png", caption="../report/fig3.rst", category="Figures"),
    log:
        "results/logs/figures/fig3_slurp.log",
    conda:
        "../../envs/ws2s-data.yaml"
    params:
        code=code_version("ws2s.figures"),
    shell:
        logged("ws2s fig-agreement --kind generation --title SLURP --out {output} {input}")


for _name, _dataset in design.w2s_tables(config).items():

    rule:
        """PGR per method with seed error bars."""
        name:
            f"pgr_{_dataset}"
        input:
            weak=design.weak_files(config, _dataset),
            strong=design.strong_files(config, _dataset),
        output:
            report(f"results/figures/pgr_{_dataset}.png", caption="../report/pgr.rst", category="Figures"),
        log:
            f"results/logs/figures/pgr_{_dataset}.log",
        conda:
            "../../envs/ws2s-data.yaml"
        params:
            title=design.dataset_entry(config, _dataset).title,
            slice=design.pgr_params(config, _dataset),
            code=code_version("ws2s.figures", "ws2s.tables"),
        shell:
            logged(
                "ws2s fig-pgr --title {params.title:q} --params {params.slice:q} --out {output} "
                "--weak {input.weak} --strong {input.strong}"
            )


for _name, _dataset in design.w2s_tables(config).items():

    rule:
        """Reliability diagram: accuracy against confidence of every method's test predictions."""
        name:
            f"reliability_{_dataset}"
        input:
            test=f"results/classification/{_dataset}/splits/test.parquet",
            predictions=design.strong_files(config, _dataset, "predictions.parquet"),
        output:
            report(
                f"results/figures/reliability_{_dataset}.png", caption="../report/reliability.rst", category="Figures"
            ),
        log:
            f"results/logs/figures/reliability_{_dataset}.log",
        conda:
            "../../envs/ws2s-data.yaml"
        params:
            title=design.dataset_entry(config, _dataset).title,
            code=code_version("ws2s.figures", "ws2s.tables"),
        shell:
            logged(
                "ws2s fig-reliability --title {params.title:q} --test {input.test} --out {output} "
                "--predictions {input.predictions}"
            )


rule pgr_slurp:
    """PGR per method of the generation track, with seed error bars."""
    input:
        weak=design.weak_files(config),
        strong=design.strong_files(config),
    output:
        report("results/figures/pgr_slurp.png", caption="../report/pgr.rst", category="Figures"),
    log:
        "results/logs/figures/pgr_slurp.log",
    conda:
        "../../envs/ws2s-data.yaml"
    params:
        slice=design.pgr_params(config),
        code=code_version("ws2s.figures", "ws2s.tables"),
    shell:
        logged(
            "ws2s fig-pgr --title SLURP --params {params.slice:q} --out {output} "
            "--weak {input.weak} --strong {input.strong}"
        )
