"""`ws2s` command line: one subcommand per pipeline step; Snakemake rules call these.

Every step takes `--params`, the canonical JSON of the config slice its rule passes, so
a rule's params and the step's inputs are the same thing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ws2s import design
from ws2s.errors import Ws2sError


def _threads() -> None:
    # Snakemake exports the job's thread count; torch would otherwise take every core.
    threads = int(os.environ.get("WS2S_THREADS", "0"))
    if threads:
        import torch

        torch.set_num_threads(threads)


def cmd_validate(args) -> None:
    from ws2s.configfile import check, load

    check(load(*args.configs))
    print("config ok")


def cmd_classification_splits(args) -> None:
    from ws2s.config import SplitConfig
    from ws2s.stages.classification_splits import write_classification_splits

    counts = write_classification_splits(SplitConfig.from_params(json.loads(args.params)), args.out_dir)
    print(json.dumps(counts))


def cmd_prepare_model(args) -> None:
    from ws2s.models import prepare

    params = json.loads(args.params)
    out = prepare(args.name, params["registry"][args.name], args.root, params["registry"])
    print(f"prepared {args.name} at {out}")


def cmd_weak_classify(args) -> None:
    from ws2s.config import WeakTrainConfig
    from ws2s.models import resolve
    from ws2s.stages.weak_classify import run_weak_classification

    _threads()
    cfg = WeakTrainConfig.from_params(json.loads(args.params))
    model_path = resolve(cfg.model_name, cfg.model_spec, args.models_root)
    metrics = run_weak_classification(cfg, model_path, args.split_dir, args.out_labels, args.out_metrics)
    print(json.dumps(metrics))


def cmd_table1(args) -> None:
    from ws2s.tables import table1, write_table

    params = json.loads(args.params)
    title = {"accuracy": "Table 1: models finetuned on ground truth (test accuracy, mean ± std over seeds)",
             "slu_f1": "Table 3: models finetuned on ground truth (SLURP test SLU-F1, mean ± std over seeds)"}
    write_table(table1(args.metrics, params["decimals"], args.metric), args.out_stem, title[args.metric])


def cmd_strong_features(args) -> None:
    from ws2s.models import resolve
    from ws2s.stages.strong_features import write_features

    _threads()
    params = json.loads(args.params)
    write_features(resolve(args.name, params["model_spec"], args.models_root), params.get("prompt"), args.split_dir,
                   params["max_length"], params["head"], params["bf16"], args.out, args.out_info,
                   params.get("train_layers", 0))


def cmd_strong_classify(args) -> None:
    from ws2s.config import StrongTrainConfig
    from ws2s.models import resolve
    from ws2s.stages.strong_classify import run_strong_classification

    _threads()
    cfg = StrongTrainConfig.from_params(json.loads(args.params))
    model_path = None if cfg.train_layers == 0 else resolve(cfg.model_name, cfg.model_spec, args.models_root)
    metrics = run_strong_classification(cfg, model_path, args.split_dir, args.weak_labels, args.gold,
                                        args.features or None, args.out_predictions, args.out_metrics, args.out_curve)
    print(json.dumps(metrics))


def cmd_label_models(args) -> None:
    from ws2s.config import LabelModelConfig
    from ws2s.stages.label_models import run_label_models

    cfg = LabelModelConfig.from_params(json.loads(args.params))
    print(json.dumps(run_label_models(cfg, args.split_dir, args.weak_labels, args.out)))


def cmd_table_w2s(args) -> None:
    import pandas as pd

    from ws2s.tables import (NO_VALIDATION, validated, w2s_notes, w2s_results, w2s_table, write_generation_protocols,
                             write_table)

    title = args.heading
    layout = json.loads(args.params)
    metric = "SLU-F1" if args.dataset == "slurp" else "test accuracy"
    write_table(w2s_table(w2s_results(args.weak, args.strong, layout), layout), args.out_stem,
                f"{title}: Weak(S)-to-Strong on {args.dataset} ({metric} and PGR)",
                w2s_notes(args.strong) + " Protocol: the paper's (each run's last epoch; the strong settings "
                "chosen for the ceiling on gold validation data).")
    no_gold = w2s_results(args.weak, args.strong, layout, protocol="nogold") if validated(args.strong) else None
    write_table(w2s_table(no_gold, layout) if no_gold is not None else pd.DataFrame({"note": [NO_VALIDATION]}),
                f"{args.out_stem}_nogold", f"{title}, no-gold protocol: Weak(S)-to-Strong on {args.dataset} "
                f"({metric} and PGR)", w2s_notes(args.strong) + " Protocol: no gold at all for the Weak-to-Strong "
                "runs; each run keeps the epoch of the lowest loss against its own (weak) targets on the "
                "validation split; the ceiling keeps the epoch of the lowest gold validation loss.")
    if args.dataset == "slurp":  # a classification data set's come from its curves stage
        if not (args.out_curves and args.out_figure):
            raise Ws2sError("table-w2s --dataset slurp: --out-curves and --out-figure are required")
        write_generation_protocols(args.weak, args.strong, layout, args.out_stem, title, args.out_curves,
                                   args.out_figure)


def cmd_curves(args) -> None:
    from ws2s.stages.curves import run_curves

    params = json.loads(args.params)
    run_curves(args.dataset, args.heading, args.title, params["layout"], params["fewgold_val"], args.weak,
               args.weak_labels, args.strong, args.curves, args.val_gold, args.test, args.out_curves, args.out_stem,
               args.out_figure)


def cmd_table_ablation(args) -> None:
    from ws2s.tables import ablation_table, w2s_notes, write_table

    params = json.loads(args.params)
    titles = {"table8": "Table 8: soft labels of Bayesian Multi-Weak (SLURP)",
              "table9": "Table 9: weights of Bayesian Multi-Weak (SLURP)",
              "table10": "Table 10: Joint Decoding with other generators and judges (SLURP)",
              "table11": "Table 11: beams pooled by Joint Decoding (SLURP)"}
    files = [path for _, paths in params["rows"] for path in paths]
    write_table(ablation_table(params["rows"], args.weak, args.ceiling, params["format"]["decimals"]), args.out_stem,
                titles[args.table], w2s_notes(files) + " Runs on the largest ensemble, without the auxiliary loss.")


def cmd_generation_splits(args) -> None:
    from ws2s.config import GenerationSplitConfig
    from ws2s.stages.generation_splits import write_generation_splits

    print(json.dumps(write_generation_splits(GenerationSplitConfig.from_params(json.loads(args.params)), args.out_dir)))


def cmd_generation_fewgold(args) -> None:
    from ws2s.config import FewgoldConfig
    from ws2s.stages.generation_splits import write_fewgold

    print(json.dumps(write_fewgold(FewgoldConfig.from_params(json.loads(args.params)), args.val_gold, args.out)))


def cmd_weak_generate(args) -> None:
    from ws2s.config import WeakGenerationConfig
    from ws2s.models import resolve
    from ws2s.stages.weak_generate import run_weak_generation

    _threads()
    cfg = WeakGenerationConfig.from_params(json.loads(args.params))
    metrics = run_weak_generation(cfg, resolve(cfg.model_name, cfg.model_spec, args.models_root), args.split_dir,
                                  args.out_hypotheses, args.out_metrics, args.out_model)
    print(json.dumps(metrics))


def cmd_launch(args) -> None:
    """One process (RANK etc. filled in by the engine), or `--procs` (default: one per GPU) on
    each of `--nodes` nodes through torchrun (and srun across nodes)."""
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    procs = args.procs or max(args.gpus, 1)
    if procs > 1 or args.nodes > 1:
        from ws2s.train.engine import launch_command, supervise

        command = launch_command(argv, procs, args.nodes, args.gpus)
        if os.environ.get("WS2S_THREADS"):  # the job's threads are shared by its processes
            os.environ["WS2S_THREADS"] = str(max(1, int(os.environ["WS2S_THREADS"]) // procs))
        raise SystemExit(supervise(command))
    raise SystemExit(main(argv))


def cmd_map_hypotheses(args) -> None:
    from ws2s.config import MappingConfig
    from ws2s.models import resolve
    from ws2s.stages.map_hypotheses import map_hypotheses

    _threads()
    cfg = MappingConfig.from_params(json.loads(args.params))
    print(json.dumps(map_hypotheses(cfg, resolve(cfg.strong_model, cfg.strong_spec, args.models_root), args.split_dir,
                                    args.hypotheses, args.out)))


def cmd_joint_decode(args) -> None:
    from ws2s.config import JointDecodingConfig
    from ws2s.stages.joint_decode import joint_decode

    _threads()
    cfg = JointDecodingConfig.from_params(json.loads(args.params))
    print(json.dumps(joint_decode(cfg, args.split_dir, args.hypotheses, args.weak_models, args.out)))


def cmd_strong_generate(args) -> None:
    from ws2s.config import StrongGenerationConfig
    from ws2s.models import resolve
    from ws2s.stages.strong_generate import run_strong_generation

    _threads()
    cfg = StrongGenerationConfig.from_params(json.loads(args.params))
    metrics = run_strong_generation(cfg, resolve(cfg.model_name, cfg.model_spec, args.models_root), args.split_dir,
                                    args.mapped, args.joint or None, args.gold, args.fewgold or None,
                                    args.out_generations, args.out_curve, args.out_metrics, args.out_model or None)
    print(json.dumps(metrics))


def cmd_cdpo(args) -> None:
    from ws2s.config import CdpoConfig
    from ws2s.stages.cdpo import run_cdpo

    _threads()
    cfg = CdpoConfig.from_params(json.loads(args.params))
    print(json.dumps(run_cdpo(cfg, args.start_model, args.weak_models, args.split_dir, args.out_pairs, args.out_metrics)))


def cmd_table5(args) -> None:
    from ws2s.tables import table5, table5_notes, write_table

    params = json.loads(args.params)
    write_table(table5(args.cdpo, args.weak, args.ceiling, params["decimals"]), args.out_stem,
                "Table 5: cDPO on the weak ensemble's preferences (SLURP test SLU-F1 and PGR, before and after)",
                table5_notes(args.cdpo))


def cmd_inspect(args) -> None:
    from ws2s.inspect import inspect

    print(inspect(args.path, args.head, args.id))


def cmd_verify(args) -> None:
    import shlex

    from ws2s.verify import verify

    checked, bad = verify(args.results)
    if not bad:
        print(f"{args.results}: {checked} Parquet and JSON files checked, each as its step writes it "
              "(Parquet against ws2s.schemas, JSON parsed)")
        return
    print(f"{len(bad)} bad, among {checked} Parquet and JSON files under {args.results}:",
          *(f"  {why}" for _, why in bad), "delete them: rm -r " + " ".join(shlex.quote(str(p)) for p, _ in bad), sep="\n")
    raise Ws2sError(f"{args.results}: {len(bad)} file(s) are not what their step writes (listed above); delete them and "
                    "rerun the workflow, which makes them again (it reruns a step only when an output is missing "
                    "or older than its inputs, not when it is damaged)")


def cmd_fig_agreement(args) -> None:
    from ws2s.figures import agreement_figure

    print(agreement_figure(args.kind, args.files, args.title, args.out).round(3).to_string())


def cmd_fig_pgr(args) -> None:
    from ws2s.figures import pgr_bars
    from ws2s.tables import w2s_results

    pgr_bars(w2s_results(args.weak, args.strong, json.loads(args.params)), f"{args.title}: PGR per method", args.out)


def cmd_fig_reliability(args) -> None:
    from ws2s.figures import reliability_figure
    from ws2s.io import run_record
    from ws2s.tables import METHOD_LABELS, run_key

    runs: dict[tuple[str, str], list[str]] = {}
    for path in args.predictions:
        method, source, aux, _ = run_key(run_record(path))
        runs.setdefault((METHOD_LABELS[method].format(source), aux), []).append(path)
    for (label, aux), ece in reliability_figure(runs, args.test, f"{args.title}: reliability", args.out).items():
        print(f"{label} {aux}: ECE {100 * ece:.2f}%")


# subcommand -> (handler, help, required options, other arguments)
COMMANDS = {
    "validate": (cmd_validate, "validate config files (later ones overlay earlier ones)", [],
                 {"configs": {"nargs": "+"}}),
    "classification-splits": (cmd_classification_splits, "classification splits to Parquet", ["params", "out-dir"], {}),
    "prepare-model": (cmd_prepare_model, "convert a GGUF or cut down a model into results/models/",
                      ["name", "params", "root"], {}),
    "weak-classify": (cmd_weak_classify, "finetune a weak classifier and write its weak labels",
                      ["params", "models-root", "split-dir", "out-labels", "out-metrics"], {}),
    "strong-features": (cmd_strong_features, "frozen features of the strong model (linear probe)",
                        ["name", "params", "models-root", "split-dir", "out", "out-info"], {}),
    "strong-classify": (cmd_strong_classify, "one strong run of a Weak(S)-to-Strong method",
                        ["params", "models-root", "split-dir", "out-predictions", "out-metrics", "out-curve"],
                        {"--weak-labels": {"nargs": "*", "default": []}, "--gold": {"nargs": "*", "default": []},
                         "--features": {"default": ""}}),
    "label-models": (cmd_label_models, "every configured label model's soft labels from an ensemble's votes",
                     ["params", "split-dir", "out"], {"weak_labels": {"nargs": "+"}}),
    "table-w2s": (cmd_table_w2s, "a Weak(S)-to-Strong table (2, 4, 7, a data set's own) from weak and strong metrics",
                  ["params", "out-stem", "heading"],
                  {"--dataset": {"required": True, "help": "a classification data set, or slurp (SLU-F1)"},
                   "--weak": {"nargs": "+", "required": True}, "--strong": {"nargs": "+", "required": True},
                   "--out-curves": {"default": "", "help": "slurp: its runs' curves (Parquet)"},
                   "--out-figure": {"default": "", "help": "slurp: their figure (PNG)"}}),
    "curves": (cmd_curves, "a classification data set's training curves, protocol tables and curves figure",
               ["params", "heading", "title", "val-gold", "test", "out-curves", "out-stem", "out-figure"],
               {"--dataset": {"required": True}, "--weak": {"nargs": "+", "required": True},
                "--weak-labels": {"nargs": "+", "required": True}, "--strong": {"nargs": "+", "required": True},
                "--curves": {"nargs": "+", "required": True}}),
    "table1": (cmd_table1, "Table 1 (or 3) from weak and ceiling metrics", ["params", "out-stem"],
               {"metrics": {"nargs": "+"}, "--metric": {"choices": ["accuracy", "slu_f1"], "default": "accuracy"}}),
    "table-ablation": (cmd_table_ablation, "Tables 8, 9 and 11 (generation ablations)", ["params", "out-stem"],
                       {"--table": {"required": True, "choices": list(design.ABLATION_TABLES)},
                        "--weak": {"nargs": "+", "required": True}, "--ceiling": {"nargs": "+", "required": True}}),
    "generation-splits": (cmd_generation_splits, "SLURP splits for the generation track", ["params", "out-dir"], {}),
    "generation-fewgold": (cmd_generation_fewgold, "the few-gold protocol's subset of SLURP's val for one seed",
                           ["params", "val-gold", "out"], {}),
    "fig-agreement": (cmd_fig_agreement, "Figure 3: agreement between weak models", ["title", "out"],
                      {"--kind": {"required": True, "choices": ["classification", "generation"]},
                       "files": {"nargs": "+"}}),
    "fig-pgr": (cmd_fig_pgr, "PGR per method as a bar chart", ["params", "title", "out"],
                {"--weak": {"nargs": "+", "required": True}, "--strong": {"nargs": "+", "required": True}}),
    "fig-reliability": (cmd_fig_reliability, "reliability diagram of the strong runs' test predictions",
                        ["title", "test", "out"], {"--predictions": {"nargs": "+", "required": True}}),
    "launch": (cmd_launch, "run a training subcommand on the job's GPUs and nodes (torchrun, srun)", [],
               {"--gpus": {"type": int, "default": 0}, "--nodes": {"type": int, "default": 1},
                "--procs": {"type": int, "default": 0, "help": "processes a node (default: one per GPU)"},
                "argv": {"nargs": argparse.REMAINDER}}),
    "inspect": (cmd_inspect, "summarise any of the pipeline's Parquet files", [],
                {"path": {}, "--head": {"type": int, "default": 5}, "--id": {"default": None}}),
    "verify": (cmd_verify, "check every Parquet and JSON file under results/ against ws2s.schemas; list what to delete",
               [], {"results": {"nargs": "?", "default": "results"}}),
    "map-hypotheses": (cmd_map_hypotheses, "a weak model's hypotheses in the strong tokenizer (Eqns 6-7)",
                       ["params", "models-root", "split-dir", "hypotheses", "out"], {}),
    "joint-decode": (cmd_joint_decode, "Joint Decoding: the ensemble's preferred candidate per utterance",
                     ["params", "split-dir", "out"],
                     {"--hypotheses": {"nargs": "+", "required": True}, "--weak-models": {"nargs": "+", "required": True}}),
    "strong-generate": (cmd_strong_generate, "one strong run of the generation track",
                        ["params", "models-root", "split-dir", "out-generations", "out-curve", "out-metrics"],
                        {"--mapped": {"nargs": "*", "default": []}, "--joint": {"default": ""},
                         "--gold": {"nargs": "*", "default": []}, "--fewgold": {"default": ""},
                         "--out-model": {"default": ""}}),
    "cdpo": (cmd_cdpo, "cDPO: weak-ensemble preferences over strong candidates, conservative DPO",
             ["params", "start-model", "split-dir", "out-pairs", "out-metrics"],
             {"--weak-models": {"nargs": "+", "required": True}}),
    "table5": (cmd_table5, "Table 5 from cDPO, weak and ceiling metrics", ["params", "out-stem"],
               {"--cdpo": {"nargs": "+", "required": True}, "--weak": {"nargs": "+", "required": True},
                "--ceiling": {"nargs": "+", "required": True}}),
    "weak-generate": (cmd_weak_generate, "finetune a weak causal LM and write its generations",
                      ["params", "models-root", "split-dir", "out-hypotheses", "out-metrics", "out-model"], {}),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ws2s", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (handler, help_text, required, others) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text)
        for option in required:
            command.add_argument(f"--{option}", required=True)
        for argument, kwargs in others.items():
            command.add_argument(argument, **kwargs)
        command.set_defaults(func=handler)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "params", None) is not None:
            try:
                json.loads(args.params)
            except json.JSONDecodeError as err:
                raise Ws2sError(f"--params is not valid JSON ({err.msg} at character {err.pos})") from None
        args.func(args)
    except Ws2sError as err:
        print(f"ws2s: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a read-only folder: the system's word, one line
        print(f"ws2s: error: {err.filename or args.command}: {err.strerror or err}", file=sys.stderr)
        return 2
    finally:
        if "torch.distributed" in sys.modules:  # a training step over several ranks
            from ws2s.train.engine import close_distributed

            close_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
