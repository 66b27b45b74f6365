rule table1:
    """Table 1: every model finetuned on ground truth, accuracy mean ± std over seeds."""
    input:
        design.table1_inputs(config),
    output:
        csv=report("results/tables/table1.csv", caption="../report/table1.rst", category="Tables"),
        md="results/tables/table1.md",
    log:
        "results/logs/tables/table1.log",
    conda:
        "../../envs/ws2s-data.yaml"
    params:
        slice=design.table_params(config, "table1"),
        code=code_version("ws2s.tables"),
    shell:
        logged("ws2s table1 --params {params.slice:q} --out-stem results/tables/table1 {input}")


for _name, _dataset in design.w2s_tables(config).items():

    rule:
        """A classification data set's table (2: SciQ, 7: Cosmos QA, and those not in the paper): every Weak(S)-to-Strong method, accuracy and PGR."""
        name:
            f"{_name}"
        input:
            weak=design.weak_files(config, _dataset),
            strong=design.strong_files(config, _dataset),
        output:
            csv=report(f"results/tables/{_name}.csv", caption="../report/table_w2s.rst", category="Tables"),
            md=f"results/tables/{_name}.md",
            nogold_csv=report(
                f"results/tables/{_name}_nogold.csv", caption="../report/table_w2s_nogold.rst", category="Tables"
            ),
            nogold_md=f"results/tables/{_name}_nogold.md",
        log:
            f"results/logs/tables/{_name}.log",
        conda:
            "../../envs/ws2s-data.yaml"
        params:
            heading=design.w2s_heading(config, _dataset),
            slice=design.table_params(config, _name),
            code=code_version("ws2s.tables"),
        shell:
            logged(
                f"ws2s table-w2s --dataset {_dataset} --heading {{params.heading:q}} "
                f"--params {{params.slice:q}} --out-stem results/tables/{_name} "
                "--weak {input.weak} --strong {input.strong}"
            )


for _name, _dataset in design.w2s_tables(config).items():

    rule:
        """A classification data set's training curves: every strong run scored point by point on gold validation (after training; no run reads it), the four selection protocols side by side, the few-gold and gold-free tables, and the curves figure."""
        name:
            f"curves_{_dataset}"
        input:
            weak=design.weak_files(config, _dataset),
            weak_labels=design.weak_files(config, _dataset, "labels.parquet"),
            strong=design.strong_files(config, _dataset),
            curves=design.strong_files(config, _dataset, "curve.parquet"),
            val_gold=f"results/classification/{_dataset}/splits/val_gold.parquet",
            test=f"results/classification/{_dataset}/splits/test.parquet",
        output:
            curves=f"results/curves/{_dataset}.parquet",
            protocols_csv=report(
                f"results/tables/{_name}_protocols.csv", caption="../report/table_protocols.rst", category="Tables"
            ),
            protocols_md=f"results/tables/{_name}_protocols.md",
            fewgold_csv=f"results/tables/{_name}_fewgold.csv",
            fewgold_md=f"results/tables/{_name}_fewgold.md",
            goldfree_csv=f"results/tables/{_name}_goldfree.csv",
            goldfree_md=f"results/tables/{_name}_goldfree.md",
            figure=report(f"results/figures/curves_{_dataset}.png", caption="../report/curves.rst", category="Figures"),
        log:
            f"results/logs/tables/{_name}_curves.log",
        conda:
            "../../envs/ws2s-data.yaml"
        params:
            heading=design.w2s_heading(config, _dataset),
            title=design.dataset_entry(config, _dataset).title,
            slice=design.curves_params(config, _name),
            code=code_version("ws2s.stages.curves", "ws2s.curves", "ws2s.tables", "ws2s.figures"),
        shell:
            logged(
                f"ws2s curves --dataset {_dataset} --heading {{params.heading:q}} --title {{params.title:q}} "
                "--params {params.slice:q} "
                f"--out-stem results/tables/{_name} --out-curves {{output.curves}} --out-figure {{output.figure}} "
                "--val-gold {input.val_gold} --test {input.test} --weak {input.weak} "
                "--weak-labels {input.weak_labels} --strong {input.strong} --curves {input.curves}"
            )


rule table3:
    """Table 3: weak models and the strong ceiling finetuned on gold SLURP targets, SLU-F1 over seeds."""
    input:
        weak=design.weak_files(config),
        ceiling=design.ceiling_files(config),
    output:
        csv=report("results/tables/table3.csv", caption="../report/table3.rst", category="Tables"),
        md="results/tables/table3.md",
    log:
        "results/logs/tables/table3.log",
    conda:
        "../../envs/ws2s-data.yaml"
    params:
        slice=design.table_params(config, "table3"),
        code=code_version("ws2s.tables"),
    shell:
        logged(
            "ws2s table1 --metric slu_f1 --params {params.slice:q} --out-stem results/tables/table3 "
            "{input.weak} {input.ceiling}"
        )


rule table4:
    """Table 4: every Weak(S)-to-Strong method of the generation track, SLU-F1 and PGR, under the paper's, the no-gold and the few-gold protocols."""
    input:
        weak=design.weak_files(config),
        strong=design.strong_files(config),
    output:
        csv=report("results/tables/table4.csv", caption="../report/table_w2s.rst", category="Tables"),
        md="results/tables/table4.md",
        nogold_csv=report(
            "results/tables/table4_nogold.csv", caption="../report/table_w2s_nogold.rst", category="Tables"
        ),
        nogold_md="results/tables/table4_nogold.md",
        fewgold_csv="results/tables/table4_fewgold.csv",
        fewgold_md="results/tables/table4_fewgold.md",
        protocols_csv=report(
            "results/tables/table4_protocols.csv", caption="../report/table_protocols.rst", category="Tables"
        ),
        protocols_md="results/tables/table4_protocols.md",
        curves="results/curves/slurp.parquet",
        figure=report("results/figures/curves_slurp.png", caption="../report/curves_slurp.rst", category="Figures"),
    log:
        "results/logs/tables/table4.log",
    conda:
        "../../envs/ws2s-data.yaml"
    params:
        slice=design.table_params(config, "table4"),
        code=code_version("ws2s.tables", "ws2s.curves", "ws2s.figures"),
    shell:
        logged(
            "ws2s table-w2s --dataset slurp --heading 'Table 4' --params {params.slice:q} --out-stem results/tables/table4 "
            "--weak {input.weak} --strong {input.strong} --out-curves {output.curves} --out-figure {output.figure}"
        )


rule table_ablation:
    """Tables 8, 9, 10 and 11: the generation track's ablations on the largest ensemble."""
    input:
        weak=design.weak_files(config),
        ceiling=design.ceiling_files(config),
        runs=lambda wildcards: design.ablation_inputs(config, wildcards.table),
    output:
        csv=report("results/tables/{table}.csv", caption="../report/table_ablation.rst", category="Tables"),
        md="results/tables/{table}.md",
    log:
        "results/logs/tables/{table}.log",
    wildcard_constraints:
        table="|".join(design.ABLATION_TABLES),
    conda:
        "../../envs/ws2s-data.yaml"
    params:
        slice=lambda wildcards: design.table_params(config, wildcards.table),
        code=code_version("ws2s.tables"),
    shell:
        logged(
            "ws2s table-ablation --table {wildcards.table} --params {params.slice:q} --out-stem results/tables/{wildcards.table} "
            "--weak {input.weak} --ceiling {input.ceiling}"
        )
