"""Benchmark: the embedded default's heaviest kernels on this CPU as it is and as CPUs without
AMX run them (oneDNN's ONEDNN_MAX_CPU_ISA caps the instructions torch's CPU kernels use), in
bf16 autocast (what the embedded default runs) and in fp32.
Run on demand, after the embedded default has prepared its models:
    python tests/benchmarks/bench_isa.py [--models results/models] [--threads 2]

One subprocess per ISA setting (oneDNN reads the variable once, at start). The kernels, each
a cut-down copy of a step's inner loop on the real weights and data:
- features: Qwen2.5-Coder-0.5B forward over 64 prompted SLURP-intent pairs (`strong_features`);
- train step: one forward and backward of its top 8 of 24 blocks on 8 SLURP prompts with
  their targets, the cross-entropy over the vocabulary (`strong_generate`'s training);
- decode: greedy decoding of 8 SLURP test prompts, 24 new tokens (`strong_generate`'s test
  decoding, `weak_generate`'s hypotheses).
Prints a Markdown table of median seconds and each setting's ratio to the first one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SETTINGS = ("native", "AVX512_CORE_BF16", "AVX2")
KERNELS = ("features", "train step", "decode")


def _timed(fn, repeats: int) -> float:
    fn()  # warm-up: oneDNN builds its kernels at first use
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def worker(models: str, bf16: bool, threads: int, repeats: int) -> dict[str, float]:
    import torch

    from ws2s.data.slurp import PROMPTS, load_utterances, render_prompt
    from ws2s.train.backbone import freeze_for
    from ws2s.train.generate import decode, encode_pairs, load_causal, target_logits

    torch.set_num_threads(threads)
    model, tokenizer = load_causal(f"{models}/qwen2.5-coder-0.5b")
    utterances = load_utterances("./data/slurp/test.jsonl", "data.slurp.test").head(64)
    prompts = [render_prompt(PROMPTS["short"], s) for s in utterances["sentence"]]
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)  # noqa: E731

    def features():
        batch = tokenizer([f'A voice assistant heard: "{s}" Is the user\'s intent "{scenario} {action}"?'
                           for s, scenario, action in utterances[["sentence", "scenario", "action"]].itertuples(index=False)],
                          return_tensors="pt", padding=True)
        with torch.no_grad(), autocast():
            model.model(**batch)

    freeze_for(model, 8)
    items = encode_pairs(tokenizer, prompts[:8], list(utterances["target"][:8]))

    def train_step():
        with autocast():
            logits, target, _ = target_logits(model, tokenizer, items)
            loss = torch.nn.functional.cross_entropy(logits.float(), target)
        loss.backward()
        model.zero_grad(set_to_none=True)

    def decode_some():
        with autocast():
            decode(model, tokenizer, prompts[:8], beams=1, max_new_tokens=24, batch_size=8, desc="decode")

    model.eval()
    return {"features": _timed(features, repeats), "train step": _timed(train_step, repeats),
            "decode": _timed(decode_some, repeats)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="results/models")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS,
                        help="ISA caps to run (native: none)")
    parser.add_argument("--dtypes", nargs="+", default=["bf16", "fp32"], choices=["bf16", "fp32"],
                        help="bf16 is emulated, so very slow, on a CPU without AMX or AVX-512 BF16")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.models, args.bf16, args.threads, args.repeats)))
        return
    results: dict[tuple[str, bool], dict[str, float]] = {}
    for setting in args.settings:
        env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
        if setting != "native":
            env["ONEDNN_MAX_CPU_ISA"] = setting
        for bf16 in [dtype == "bf16" for dtype in args.dtypes]:
            command = [sys.executable, __file__, "--worker", "--models", args.models, "--threads", str(args.threads),
                       "--repeats", str(args.repeats)] + (["--bf16"] if bf16 else [])
            run = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            results[setting, bf16] = json.loads(run.stdout.strip().splitlines()[-1])
            print(f"{setting} {'bf16' if bf16 else 'fp32'}: {results[setting, bf16]}", file=sys.stderr)
    print(f"{args.threads} threads; median of {args.repeats} after a warm-up; seconds (ratio to native)\n")
    settings = args.settings
    print("| kernel | dtype | " + " | ".join(settings) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in settings) + " |")
    for kernel in KERNELS:
        for bf16 in [dtype == "bf16" for dtype in args.dtypes]:
            first = results[settings[0], bf16][kernel]
            cells = [f"{first:.2f}"] + [f"{results[s, bf16][kernel]:.2f} ({results[s, bf16][kernel] / first:.2f}×)"
                                        for s in settings[1:]]
            print(f"| {kernel} | {'bf16' if bf16 else 'fp32'} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
