"""Benchmark: words per second through the cross-tokenizer mapping (strong forward excluded).

Run on demand, after the embedded default has prepared the models:
    python tests/benchmarks/bench_mapping.py [--weak results/models/gemma3-270m] [--strong results/models/smollm2-135m]

Counts the strong tokenisation with offsets (batched), word splitting, grouping, Eqn 6 and
Eqn 7 for every SLURP devel target; the weak token offsets come with the weak generation
and the strong confidences with the strong forward pass, so both are given.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ws2s.data.slurp import load_utterances
from ws2s.mapping import map_batch, starts_from_offsets, word_starts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weak", default="results/models/gemma3-270m")
    parser.add_argument("--strong", default="results/models/smollm2-135m")
    parser.add_argument("--data", default="./data/slurp/devel.jsonl")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from transformers import AutoTokenizer

    weak, strong = AutoTokenizer.from_pretrained(args.weak), AutoTokenizer.from_pretrained(args.strong)
    texts = list(load_utterances(args.data, "data")["target"]) * args.repeat
    weak_starts = [starts_from_offsets(o) for o in weak(texts, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]]
    rng = np.random.default_rng(0)
    weak_logprobs = [np.log(rng.uniform(0.05, 1, len(s))) for s in weak_starts]
    n_words = sum(len(word_starts(t)) for t in texts)

    start = time.perf_counter()
    offsets = strong(texts, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    strong_starts = [starts_from_offsets(o) for o in offsets]
    tokenized = time.perf_counter()
    map_batch(texts, weak_starts, weak_logprobs, strong_starts, [np.ones(len(s)) for s in strong_starts])
    seconds = time.perf_counter() - start
    mapping = time.perf_counter() - tokenized
    print(f"mapping alone: {n_words / mapping:,.0f} words/s; with the strong tokenisation: ", end="")
    print(f"{len(texts)} hypotheses, {n_words} words in {seconds:.2f} s: {n_words / seconds:,.0f} words/s")


if __name__ == "__main__":
    main()
