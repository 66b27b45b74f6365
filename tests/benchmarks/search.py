"""The search behind the CPU configs' strong-training settings, on validation data only.

Run on demand, after the embedded default has made its splits, weak labels and features:
    python tests/benchmarks/search.py classification [--seeds 0 1] [--train-layers 2] [--ceiling-only]
    python tests/benchmarks/search.py generation [--seeds 0]

Per setting (epochs x learning rate; for generation also the trained top blocks) it trains
the strong ceiling on gold, as the paper's protocol does (Appendix C: settings tuned for the
ceiling on gold validation data, then reused by every Weak-to-Strong method), and reports
its gold validation score; for classification also each single-weak run's accuracy on the
validation split against gold (for the record: the paper's protocol reuses the ceiling's
choice, and the no-gold protocol reads none) and the epochs the no-gold protocol keeps. No
test score is computed.
Runs go to results/search/; a Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ws2s.config import StrongGenerationConfig, StrongTrainConfig
from ws2s.configfile import load

CONFIGS = ("config.yaml", "workflow/configs/small.yaml")


def classification(config: dict, seeds: list[int], epochs_grid: list[int], lr_grid: list[float],
                   train_layers: int = 0, ceiling_only: bool = False) -> None:
    from ws2s.curves import two_class
    from ws2s.design import dataset_entry
    from ws2s.metrics.classification import accuracy
    from ws2s.models import resolve
    from ws2s.stages.strong_classify import run_strong_classification
    from ws2s.stages.strong_features import write_features

    cls = config["classification"]
    dataset = cls["datasets"][0]
    split_dir = Path(f"results/classification/{dataset}/splits")
    head = cls["strong_training"]["head"]
    model = resolve(cls["strong_model"], config["models"][cls["strong_model"]], "results/models") \
        if train_layers else None
    arm = {"prompt": dataset_entry(config, dataset).prompt} if train_layers and head == "readout" else {}
    # the linear probe reads the workflow's cached features; the finetuned readout arm its
    # frozen-bottom states, computed here once for every setting and seed
    features = f"results/classification/{dataset}/strong/features/{cls['strong_model']}.parquet" \
        if train_layers == 0 else f"results/search/classification/l{train_layers}/features.parquet" if arm else None
    if arm and not Path(features).exists():
        write_features(model, arm["prompt"], split_dir, cls["max_length"], head, config["engine"]["bf16"], features,
                       Path(features).with_suffix(".json"), train_layers)
    gold = [str(split_dir / f"{s}_gold.parquet") for s in ("strong_train", "val")]
    val_gold = pd.read_parquet(gold[1]).set_index("id")["label"]
    weak = [] if ceiling_only else cls["weak_models"][dataset]
    grid = list(itertools.product(epochs_grid, lr_grid))
    print(f"{dataset}: strong {cls['strong_model']}, head {head}, "
          f"trained top blocks {train_layers}, seeds {seeds}; "
          "means over seeds, validation only\n")
    header = ["epochs", "lr", "ceiling val accuracy (gold; the paper's protocol chooses by it)",
              *(f"W2S({m}) val accuracy" for m in weak), "epochs the no-gold protocol keeps",
              "ceiling val accuracy at each point (0: the start model)"]
    print("| " + " | ".join(header) + " |\n|" + " --- |" * len(header))
    base = dict(model_name=cls["strong_model"], model_spec={}, max_length=cls["max_length"],
                batch_size=cls["strong_training"]["batch_size"], train_layers=train_layers,
                head=cls["strong_training"]["head"], weights=[1.0], loss={"kind": "ce"}, dataset=dataset, **arm)
    for epochs, lr in grid:
        ceiling, kept, w2s, curves = [], {m: [] for m in weak}, {m: [] for m in weak}, []
        for seed in seeds:
            out = Path(f"results/search/classification/l{train_layers}-e{epochs}-lr{lr:g}/seed{seed}")
            cfg = StrongTrainConfig(**base, method="ceiling", target="gold", source="gold", members=[], seed=seed, epochs=epochs, lr=lr)
            ceiling.append(run_strong_classification(cfg, model, split_dir, [], gold, features,
                                                      out / "ceiling" / "p.parquet", out / "ceiling" / "m.json",
                                                      out / "ceiling" / "curve.parquet")["val_accuracy"])
            curve = pd.read_parquet(out / "ceiling" / "curve.parquet").query("split == 'val'")
            curves.append([accuracy(two_class(g["prob_1"]), val_gold[g["id"]].to_numpy()) for _, g in curve.groupby("point")])
            for member in weak:
                labels = [f"results/classification/{dataset}/weak/{member}/seed{seed}/labels.parquet"]
                cfg = replace(cfg, method="single", target="weak_labels", source=member, members=[member])
                # the val gold is handed over for the record only: a W2S run's targets stay its weak labels
                metrics = run_strong_classification(cfg, model, split_dir, labels, gold[1:], features,
                                                    out / member / "p.parquet", out / member / "m.json")
                kept[member].append(metrics["selected_epoch"])
                w2s[member].append(metrics["val_accuracy"])
        row = [epochs, f"{lr:g}", f"{100 * np.mean(ceiling):.1f}", *(f"{100 * np.mean(w2s[m]):.1f}" for m in weak),
               sorted(set(sum(kept.values(), []))), " ".join(f"{100 * a:.1f}" for a in np.mean(curves, axis=0))]
        print("| " + " | ".join(map(str, row)) + " |", flush=True)


def generation(config: dict, seeds: list[int]) -> None:
    from ws2s.models import resolve
    from ws2s.stages.strong_generate import run_strong_generation

    gen = config["generation"]
    model = resolve(gen["strong_model"], config["models"][gen["strong_model"]], "results/models")
    split_dir = Path("results/generation/splits")
    gold = [str(split_dir / f"{s}_gold.parquet") for s in ("strong_train", "val")]
    base = dict(model_name=gen["strong_model"], model_spec={}, prompt=gen["prompt"], method="ceiling", target="gold", source="gold",
                members=[],
                weighting="average", weights=[1.0], loss={"kind": "ce"}, soft_labels={"kind": "onehot", "min_prob": 1e-4},
                batch_size=gen["strong_training"]["batch_size"], decoding=gen["decoding"],
                engine={"backend": "plain", "bf16": config["engine"]["bf16"]})
    grid = [(2, 1e-4, 4), (1, 1e-4, 4), (3, 1e-4, 4), (2, 3e-5, 4), (2, 3e-4, 4), (2, 1e-4, 8)]
    print(f"generation: strong {gen['strong_model']} ceiling on gold, seeds {seeds}; validation SLU-F1 (gold)\n")
    print("| epochs | lr | trained top blocks | ceiling val SLU-F1 (gold; chooses) | per seed | "
          "selected epoch by gold val loss |")
    print("| --- | --- | --- | --- | --- | --- |")
    for epochs, lr, layers in grid:
        scores, picked = [], []
        for seed in seeds:
            out = Path(f"results/search/generation/e{epochs}-lr{lr:g}-l{layers}/seed{seed}")
            cfg = StrongGenerationConfig(**base, seed=seed, epochs=epochs, lr=lr, train_layers=layers)
            # a finished run is read back (delete results/search to redo): two processes can
            # each run one seed, and a third prints the table over both
            metrics = (json.loads((out / "m.json").read_text()) if (out / "m.json").exists() else
                       run_strong_generation(cfg, model, split_dir, [], None, gold, None, out / "g.parquet", None,
                                             out / "m.json", None, score_test=False))
            scores.append(metrics["val_slu_f1"])
            picked.append(metrics["selected_epoch"])
        print(f"| {epochs} | {lr:g} | {layers} | {100 * np.mean(scores):.1f} | "
              f"{' / '.join(f'{100 * x:.1f}' for x in scores)} | {picked} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("track", choices=["classification", "generation"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--config", nargs="+", default=list(CONFIGS))
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 2, 4, 8], help="classification grid")
    parser.add_argument("--lrs", type=float, nargs="+", default=[3e-5, 1e-4, 3e-4, 1e-3], help="classification grid")
    parser.add_argument("--train-layers", type=int, default=0,
                        help="classification: 0, the linear probe; K > 0, the finetuned arm's top K blocks")
    parser.add_argument("--ceiling-only", action="store_true",
                        help="classification: the ceiling alone (all the paper's protocol reads)")
    args = parser.parse_args()
    config = load(*args.config)
    if args.track == "classification":
        classification(config, args.seeds, args.epochs, args.lrs, args.train_layers, args.ceiling_only)
    else:
        generation(config, args.seeds)


if __name__ == "__main__":
    main()
