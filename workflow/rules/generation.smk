rule generation_splits:
    """SLURP utterances: weak_train and strong_train from training data, test from the test set."""
    input:
        unpack(generation_split_data),
    output:
        weak_train="results/generation/splits/weak_train.parquet",
        strong_train="results/generation/splits/strong_train.parquet",
        strong_train_gold="results/generation/splits/strong_train_gold.parquet",
        val="results/generation/splits/val.parquet",
        val_gold="results/generation/splits/val_gold.parquet",
        test="results/generation/splits/test.parquet",
    log:
        "results/logs/generation_splits.log",
    conda:
        "../../envs/ws2s-data.yaml"
    params:
        slice=run_params("generation_splits"),
        code=code_version("ws2s.stages.generation_splits"),
    shell:
        logged("ws2s generation-splits --params {params.slice:q} --out-dir results/generation/splits")


rule generation_fewgold:
    """The few-gold protocol's val utterances for one seed, with their targets: the only gold the Weak-to-Strong runs are handed."""
    input:
        val_gold="results/generation/splits/val_gold.parquet",
    output:
        "results/generation/splits/fewgold/seed{seed}.parquet",
    log:
        "results/logs/generation_fewgold/seed{seed}.log",
    conda:
        "../../envs/ws2s-data.yaml"
    params:
        slice=run_params("generation_fewgold"),
        code=code_version("ws2s.stages.generation_splits"),
    shell:
        logged("ws2s generation-fewgold --params {params.slice:q} --val-gold {input.val_gold} --out {output}")


rule weak_generate:
    """Finetune one weak causal LM on gold; beam-search generations with per-token log-probs."""
    input:
        model_input,
        weak_train="results/generation/splits/weak_train.parquet",
        strong_train="results/generation/splits/strong_train.parquet",
        val="results/generation/splits/val.parquet",
        test="results/generation/splits/test.parquet",
    output:
        hypotheses="results/generation/weak/{model}/seed{seed}/hypotheses.parquet",
        metrics="results/generation/weak/{model}/seed{seed}/metrics.json",
        model=directory("results/generation/weak/{model}/seed{seed}/model"),
    log:
        "results/logs/weak_generate/{model}/seed{seed}.log",
    benchmark:
        "results/benchmarks/weak_generate/{model}/seed{seed}.tsv"
    priority: generation_priority
    conda:
        "../../envs/ws2s-train.yaml"
    threads: job_threads("weak")
    resources:
        **job_resources("weak"),
    params:
        slice=run_params("weak_generate"),
        code=code_version("ws2s.stages.weak_generate", "ws2s.models"),
    shell:
        logged(
            "WS2S_THREADS={threads} ws2s weak-generate --params {params.slice:q} --models-root results/models "
            "--split-dir results/generation/splits --out-hypotheses {output.hypotheses} "
            "--out-metrics {output.metrics} --out-model {output.model}"
        )


rule map_hypotheses:
    """One weak model's strong_train and val hypotheses in the strong tokenizer, split by Eqns 6-7."""
    input:
        unpack(run_inputs("map_hypotheses")),
    output:
        "results/generation/mapped/{model}/seed{seed}.parquet",
    log:
        "results/logs/map_hypotheses/{model}/seed{seed}.log",
    benchmark:
        "results/benchmarks/map_hypotheses/{model}/seed{seed}.tsv"
    priority: generation_priority
    conda:
        "../../envs/ws2s-train.yaml"
    threads: job_threads("features")
    resources:
        **job_resources("features"),
    params:
        slice=run_params("map_hypotheses"),
        code=code_version("ws2s.stages.map_hypotheses", "ws2s.models"),
    shell:
        logged(
            "WS2S_THREADS={threads} ws2s map-hypotheses --params {params.slice:q} --models-root results/models "
            "--split-dir results/generation/splits --hypotheses {input.hypotheses} --out {output}"
        )


rule joint_decode:
    """Joint Decoding: pool the members' M-best lists; every member scores every candidate."""
    input:
        unpack(run_inputs("joint_decode")),
    output:
        "results/generation/joint/{ensemble}/m{m}/seed{seed}.parquet",
    log:
        "results/logs/joint_decode/{ensemble}/m{m}/seed{seed}.log",
    benchmark:
        "results/benchmarks/joint_decode/{ensemble}/m{m}/seed{seed}.tsv"
    wildcard_constraints:
        m=r"\d+",
    priority: generation_priority
    conda:
        "../../envs/ws2s-train.yaml"
    threads: job_threads("weak")
    resources:
        **job_resources("weak"),
    params:
        slice=run_params("joint_decode"),
        code=code_version("ws2s.stages.joint_decode"),
    shell:
        logged(
            "WS2S_THREADS={threads} ws2s joint-decode --params {params.slice:q} --split-dir results/generation/splits "
            "--hypotheses {input.hypotheses} --weak-models {input.weak_models} --out {output}"
        )


rule strong_generate:
    """One strong run of the generation track: a method on weak hypotheses (or gold), with or without aux."""
    input:
        unpack(run_inputs("strong_generate")),
    output:
        generations="results/generation/strong/{method}/{source}/{aux}/seed{seed}/generations.parquet",
        curve="results/generation/strong/{method}/{source}/{aux}/seed{seed}/curve.parquet",
        metrics="results/generation/strong/{method}/{source}/{aux}/seed{seed}/metrics.json",
    log:
        "results/logs/strong_generate/{method}/{source}/{aux}/seed{seed}.log",
    benchmark:
        "results/benchmarks/strong_generate/{method}/{source}/{aux}/seed{seed}.tsv"
    wildcard_constraints:
        method=design.method_pattern("generation"),
        aux="noaux|aux",
    priority: generation_priority
    conda:
        "../../envs/ws2s-train.yaml"
    threads: job_threads("strong")
    resources:
        **job_resources("strong"),
    params:
        slice=run_params("strong_generate"),
        code=code_version("ws2s.stages.strong_generate", "ws2s.models"),
        joint=input_arg("strong_generate", "joint", ""),
        gold=input_arg("strong_generate", "gold", []),
        fewgold=input_arg("strong_generate", "fewgold", ""),
        model="",
    shell:
        logged(
            "WS2S_THREADS={threads} ws2s launch --gpus {resources.launch_gpus} --nodes {resources.launch_nodes} -- strong-generate --params {params.slice:q} --models-root results/models "
            "--split-dir results/generation/splits --mapped {input.mapped} --joint={params.joint} --gold {params.gold} "
            "--fewgold={params.fewgold} --out-model={params.model} --out-generations {output.generations} "
            "--out-curve {output.curve} --out-metrics {output.metrics}"
        )


use rule strong_generate as strong_generate_keep_model with:
    output:
        generations="results/generation/strong/{method}/{source}/{aux}/seed{seed}/generations.parquet",
        curve="results/generation/strong/{method}/{source}/{aux}/seed{seed}/curve.parquet",
        metrics="results/generation/strong/{method}/{source}/{aux}/seed{seed}/metrics.json",
        model=directory("results/generation/strong/{method}/{source}/{aux}/seed{seed}/model"),
    wildcard_constraints:
        method=design.cdpo_start(config)["method"],
        aux=design.cdpo_start(config)["aux"],
    params:
        slice=run_params("strong_generate"),
        code=code_version("ws2s.stages.strong_generate", "ws2s.models"),
        joint=input_arg("strong_generate", "joint", ""),
        gold=input_arg("strong_generate", "gold", []),
        fewgold=input_arg("strong_generate", "fewgold", ""),
        model="results/generation/strong/{method}/{source}/{aux}/seed{seed}/model",


# Only the runs cDPO starts from (generation.cdpo) keep their weights.
ruleorder: strong_generate_keep_model > strong_generate
