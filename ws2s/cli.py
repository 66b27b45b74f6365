"""`ws2s` command line: one subcommand per pipeline step; Snakemake rules call these.

Every step takes `--params`, the canonical JSON of the config slice its rule passes, so
a rule's params and the step's inputs are the same thing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ws2s.errors import Ws2sError


def _threads() -> None:
    # Snakemake exports the job's thread count; torch would otherwise take every core.
    threads = int(os.environ.get("WS2S_THREADS", "0"))
    if threads:
        import torch

        torch.set_num_threads(threads)


def cmd_validate(args) -> None:
    from ws2s.config import load

    load(*args.configs)
    print("config ok")


def cmd_splits(args) -> None:
    from ws2s.config import SplitConfig
    from ws2s.data.splits import write_classification_splits

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
    from ws2s.train.weak import run_weak_classification

    _threads()
    cfg = WeakTrainConfig.from_params(json.loads(args.params))
    model_path = resolve(cfg.model_name, cfg.model_spec, args.models_root)
    metrics = run_weak_classification(cfg, model_path, args.split_dir, args.out_labels, args.out_metrics)
    print(json.dumps(metrics))


def cmd_table1(args) -> None:
    from ws2s.tables import table1, write_table

    params = json.loads(args.params)
    write_table(table1(args.metrics, params["decimals"]), args.out_stem,
                "Table 1: models finetuned on ground truth (test accuracy, mean ± std over seeds)")


def cmd_strong_features(args) -> None:
    from ws2s.models import resolve
    from ws2s.train.strong import write_features

    _threads()
    params = json.loads(args.params)
    write_features(resolve(args.name, params["model_spec"], args.models_root), args.split_dir,
                   params["max_length"], args.out, args.out_info)


def cmd_strong_classify(args) -> None:
    from ws2s.config import StrongTrainConfig
    from ws2s.models import resolve
    from ws2s.train.strong import run_strong_classification

    _threads()
    cfg = StrongTrainConfig.from_params(json.loads(args.params))
    model_path = None if cfg.train_layers == 0 else resolve(cfg.model_name, cfg.model_spec, args.models_root)
    metrics = run_strong_classification(cfg, model_path, args.split_dir, args.weak_labels, args.gold or None,
                                        args.features or None, args.out_predictions, args.out_metrics)
    print(json.dumps(metrics))


def cmd_table_w2s(args) -> None:
    from ws2s.tables import w2s_notes, w2s_table, write_table

    number = {"sciq": 2, "cosmosqa": 7}[args.dataset]
    write_table(w2s_table(args.weak, args.strong, json.loads(args.params)), args.out_stem,
                f"Table {number}: Weak(S)-to-Strong on {args.dataset} (test accuracy and PGR)",
                w2s_notes(args.weak, args.strong))


def cmd_generation_splits(args) -> None:
    from ws2s.config import GenerationSplitConfig
    from ws2s.train.weak_generation import write_generation_splits

    print(json.dumps(write_generation_splits(GenerationSplitConfig.from_params(json.loads(args.params)), args.out_dir)))


def cmd_weak_generate(args) -> None:
    from ws2s.config import WeakGenerationConfig
    from ws2s.models import resolve
    from ws2s.train.weak_generation import run_weak_generation

    _threads()
    cfg = WeakGenerationConfig.from_params(json.loads(args.params))
    metrics = run_weak_generation(cfg, resolve(cfg.model_name, cfg.model_spec, args.models_root), args.split_dir,
                                  args.out_hypotheses, args.out_metrics, args.out_model)
    print(json.dumps(metrics))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ws2s", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="validate config files (later ones overlay earlier ones)")
    p.add_argument("configs", nargs="+")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("splits", help="classification splits to Parquet")
    p.add_argument("--params", required=True)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_splits)

    p = sub.add_parser("prepare-model", help="convert a GGUF or cut down a model into results/models/")
    p.add_argument("--name", required=True)
    p.add_argument("--params", required=True)
    p.add_argument("--root", required=True)
    p.set_defaults(func=cmd_prepare_model)

    p = sub.add_parser("weak-classify", help="finetune a weak classifier and write its weak labels")
    p.add_argument("--params", required=True)
    p.add_argument("--models-root", required=True)
    p.add_argument("--split-dir", required=True)
    p.add_argument("--out-labels", required=True)
    p.add_argument("--out-metrics", required=True)
    p.set_defaults(func=cmd_weak_classify)

    p = sub.add_parser("strong-features", help="frozen features of the strong model (linear probe)")
    p.add_argument("--name", required=True)
    p.add_argument("--params", required=True)
    p.add_argument("--models-root", required=True)
    p.add_argument("--split-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--out-info", required=True)
    p.set_defaults(func=cmd_strong_features)

    p = sub.add_parser("strong-classify", help="one strong run of a Weak(S)-to-Strong method")
    p.add_argument("--params", required=True)
    p.add_argument("--models-root", required=True)
    p.add_argument("--split-dir", required=True)
    p.add_argument("--weak-labels", nargs="*", default=[])
    p.add_argument("--gold", default="")
    p.add_argument("--features", default="")
    p.add_argument("--out-predictions", required=True)
    p.add_argument("--out-metrics", required=True)
    p.set_defaults(func=cmd_strong_classify)

    p = sub.add_parser("table-w2s", help="Table 2 or 7 from weak and strong metrics")
    p.add_argument("--dataset", required=True, choices=["sciq", "cosmosqa"])
    p.add_argument("--params", required=True)
    p.add_argument("--out-stem", required=True)
    p.add_argument("--weak", nargs="+", required=True)
    p.add_argument("--strong", nargs="+", required=True)
    p.set_defaults(func=cmd_table_w2s)

    p = sub.add_parser("generation-splits", help="SLURP splits for the generation track")
    p.add_argument("--params", required=True)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_generation_splits)

    p = sub.add_parser("weak-generate", help="finetune a weak causal LM and write its generations")
    p.add_argument("--params", required=True)
    p.add_argument("--models-root", required=True)
    p.add_argument("--split-dir", required=True)
    p.add_argument("--out-hypotheses", required=True)
    p.add_argument("--out-metrics", required=True)
    p.add_argument("--out-model", required=True)
    p.set_defaults(func=cmd_weak_generate)

    p = sub.add_parser("table1", help="Table 1 from weak and ceiling metrics")
    p.add_argument("--params", required=True)
    p.add_argument("--out-stem", required=True)
    p.add_argument("metrics", nargs="+")
    p.set_defaults(func=cmd_table1)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except Ws2sError as err:
        print(f"ws2s: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
