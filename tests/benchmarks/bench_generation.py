"""Benchmark: batched beam generation (KV cache) against a one-example-at-a-time loop.

Run on demand, after the embedded default has prepared the models:
    python tests/benchmarks/bench_generation.py [--model results/models/smollm2-l4] [--n 32]

Same model, prompts, beams and token budget; reports hypotheses per second for each.
"""

from __future__ import annotations

import argparse
import time

import torch

from ws2s.data.slurp import load_utterances
from ws2s.train.generate import generate, load_causal

from ws2s.data.slurp import SHORT_PROMPT


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="results/models/smollm2-l4")
    parser.add_argument("--data", default="./data/slurp/test.jsonl")
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--beams", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    torch.manual_seed(0)
    model, tokenizer = load_causal(args.model)
    prompts = [SHORT_PROMPT.format(sentence=s) for s in load_utterances(args.data, "data")["sentence"].head(args.n)]
    kwargs = dict(beams=args.beams, max_new_tokens=args.max_new_tokens)

    start = time.perf_counter()
    batched = generate(model, tokenizer, prompts, batch_size=args.batch, **kwargs)
    batched_s = time.perf_counter() - start
    start = time.perf_counter()
    looped = [generate(model, tokenizer, [p], batch_size=1, **kwargs)[0] for p in prompts]
    looped_s = time.perf_counter() - start
    same = sum(a.text == b.text for a, b in zip(batched, looped))
    print(f"torch threads {torch.get_num_threads()}; {args.n} prompts, {args.beams} beams, up to {args.max_new_tokens} new tokens")
    print("| generation | seconds | hypotheses/s |\n| --- | --- | --- |")
    print(f"| one at a time | {looped_s:.1f} | {args.n / looped_s:.2f} |")
    print(f"| batched ({args.batch}) | {batched_s:.1f} | {args.n / batched_s:.2f} |")
    print(f"speed-up {looped_s / batched_s:.1f}x; identical hypotheses {same}/{args.n}")


if __name__ == "__main__":
    main()
